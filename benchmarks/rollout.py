"""Rollout throughput and weight-sync time: vLLM backend vs transformers backend, same tiny
Qwen2.5-VL, same prompts, on CPU.

The transformers backend runs in this interpreter (the main environment); the vLLM backend
runs in the vLLM CPU environment (``.venv-vllm``, ``make setup-vllm``) through this same
script in ``--worker vllm`` mode, as a child process. Both use one torch / OpenMP thread
(a rollout actor gets one CPU in the quickstart's cluster config). Per backend:

* generation: ``--prompts`` image prompts (112 px, 16 image tokens) x ``--n`` samples of up
  to ``--max-tokens`` tokens, at temperature 1; tokens/s = generated tokens / wall time,
  best of ``--repeats`` calls after one warm-up call;
* weight sync: the full policy pushed into the engine in ``--bucket-mb`` buckets and the
  caches reset (``update_weights`` + ``reset_caches``), median of ``--syncs``.

    python benchmarks/rollout.py [--prompts 8] [--n 8] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _prompts(count: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    return [{"prompt": f"Find object {i}: answer with its box.",
             "images": [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)]} for i in range(count)]


def _state(model_dir: str, backend: str) -> list:
    """The policy's weights as the actor sends them: HF checkpoint names for vLLM, module names for hf."""
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    from rl.models.loading import load_policy

    model = load_policy(model_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    state = model.state_dict()
    if backend == "vllm":
        state = revert_weight_conversion(model, state)
    return [(k, v.detach().clone()) for k, v in state.items()]


def measure(backend_name: str, model_dir: str, args: argparse.Namespace) -> dict:
    """Run one backend in this process; returns its numbers."""
    import torch

    torch.set_num_threads(1)
    from rl.config import RolloutConfig
    from rl.rollout import build_rollout_backend
    from rl.rollout.base import SamplingParams

    cfg = RolloutConfig(backend=backend_name, max_prompt_length=512, max_response_length=args.max_tokens,
                        micro_batch_size=args.prompts, weight_sync_bucket_mb=args.bucket_mb)
    start = time.perf_counter()
    backend = build_rollout_backend(cfg, model_dir, device="cpu", dtype="float32", seed=0)
    startup = time.perf_counter() - start
    prompts = _prompts(args.prompts)
    params = SamplingParams(n=args.n, temperature=1.0, max_tokens=args.max_tokens, stop=[])
    backend.generate(prompts, params)  # warm-up
    best = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = backend.generate(prompts, params)
        seconds = time.perf_counter() - start
        tokens = sum(len(t) for t in out.token_ids)
        if best is None or tokens / seconds > best[0] / best[1]:
            best = (tokens, seconds)
    state = _state(model_dir, backend_name)
    syncs = []
    for _ in range(args.syncs):
        start = time.perf_counter()
        backend.update_weights(iter(state))
        backend.reset_caches()
        syncs.append(time.perf_counter() - start)
    mb = sum(t.numel() * t.element_size() for _, t in state) / 2**20
    backend.close()
    return {"backend": backend_name, "startup_s": startup, "tokens": best[0], "gen_s": best[1],
            "tokens_per_s": best[0] / best[1], "sync_s": statistics.median(syncs), "sync_mb": mb}


def _vllm_python() -> Path:
    return Path(os.environ.get("VRS_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--syncs", type=int, default=5)
    parser.add_argument("--bucket-mb", type=float, default=256)
    parser.add_argument("--worker", choices=["hf", "vllm"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.worker:  # child mode: one backend, JSON on the last line
        print(json.dumps(measure(args.worker, args.model, args)), flush=True)
        return 0

    from rl.config import TinyModelConfig
    from rl.models.tiny import build_tiny_qwen25vl

    work = Path(tempfile.mkdtemp(prefix="bench_rollout_"))
    model_dir = str(build_tiny_qwen25vl(work / "policy", TinyModelConfig(), image_size=112))
    print(f"tiny Qwen2.5-VL (head_dim 64), {args.prompts} image prompts x n={args.n}, up to {args.max_tokens} "
          f"tokens, temperature 1, 1 thread, weight-sync buckets of {args.bucket_mb} MB", flush=True)
    results = [measure("hf", model_dir, args)]
    python = _vllm_python()
    if python.is_file():
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", "vllm", "--model", model_dir,
               "--prompts", str(args.prompts), "--n", str(args.n), "--max-tokens", str(args.max_tokens),
               "--repeats", str(args.repeats), "--syncs", str(args.syncs), "--bucket-mb", str(args.bucket_mb)]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-4000:])
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    else:
        print(f"vLLM: no environment at {python} (make setup-vllm); transformers backend only")
    header = ("backend", "startup_s", "tokens", "gen_s", "tokens/s", "sync_s/step", "sync_MB")
    print("\n{:<8} {:>9} {:>7} {:>7} {:>9} {:>11} {:>8}".format(*header))
    for r in results:
        print(f"{r['backend']:<8} {r['startup_s']:>9.1f} {r['tokens']:>7d} {r['gen_s']:>7.2f} "
              f"{r['tokens_per_s']:>9.0f} {r['sync_s']:>11.3f} {r['sync_mb']:>8.2f}")
    if len(results) == 2:
        hf, vl = results
        print(f"\nvllm / hf: throughput x{vl['tokens_per_s'] / hf['tokens_per_s']:.2f}, "
              f"weight sync x{vl['sync_s'] / hf['sync_s']:.2f} (time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
