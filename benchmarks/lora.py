"""LoRA during GRPO vs full fine-tuning on the quickstart's tiny Qwen2.5-VL: trainable parameters
and weight-sync bytes.

Builds the tiny model (``model.tiny`` defaults, 112 px) in a temp folder and one actor worker per
setting in this process (FSDP2 on one rank, CPU): full fine-tuning (``actor.lora.rank=0``) and
LoRA (``actor.lora.rank``, default 8, the quickstart's target modules, language model only). For
each it prints the trainable parameters (= the optimizer's parameters; AdamW keeps two fp32
moments per trainable parameter) and the bytes of one weight sync: merged full weights (what the
transformers backend and vLLM on CPU receive) and, for LoRA, the adapter alone (what vLLM's LoRA
serving on GPU receives). Ratios LoRA / full are printed last.

    python benchmarks/lora.py [--rank 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)   # the repository, not benchmarks/ (rewards.py)


def _sync_bytes(buckets) -> tuple[int, int]:
    tensors = [t for bucket in buckets for _, t in bucket]
    return sum(t.numel() * t.element_size() for t in tensors), len(tensors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()

    import torch

    from rl.config import ActorConfig, LoraConfig, ModelConfig, TinyModelConfig
    from rl.models.tiny import build_tiny_qwen25vl
    from rl.workers.policy import PolicyWorker

    torch.set_num_threads(1)
    path = build_tiny_qwen25vl(Path(tempfile.mkdtemp(prefix="bench_lora_")) / "policy", TinyModelConfig(),
                               image_size=112)
    rows = {}
    for name, rank in (("full", 0), (f"lora r={args.rank}", args.rank)):
        worker = PolicyWorker(str(path), ModelConfig(), ActorConfig(lora=LoraConfig(rank=rank)), role="actor")
        counts = worker.parameter_counts()
        start = time.perf_counter()
        merged, tensors = _sync_bytes(worker.state_dict_buckets(256, checkpoint_names=True))
        merged_s = time.perf_counter() - start
        adapter = _sync_bytes(worker.adapter_buckets(256))[0] if rank else merged
        moments = sum(p.numel() for p in worker.model.parameters() if p.requires_grad) * 2 * 4
        rows[name] = dict(trainable=counts["trainable"], total=counts["total"], merged=merged, tensors=tensors,
                          adapter=adapter, merged_s=merged_s, moments=moments)
        worker.close()
    print(f"\n{'setting':<10} {'trainable':>10} {'total':>10} {'Adam bytes':>11} {'sync bytes (merged)':>20} "
          f"{'tensors':>8} {'gather s':>9} {'sync bytes (adapter)':>21}")
    for name, r in rows.items():
        print(f"{name:<10} {r['trainable']:>10,} {r['total']:>10,} {r['moments']:>11,} {r['merged']:>20,} "
              f"{r['tensors']:>8} {r['merged_s']:>9.3f} {r['adapter']:>21,}")
    full, lora = rows["full"], rows[f"lora r={args.rank}"]
    print(f"\ntrainable parameters LoRA / full: {lora['trainable'] / full['trainable']:.4f}")
    print(f"weight-sync bytes, merged weights (transformers backend, vLLM on CPU) LoRA / full: "
          f"{lora['merged'] / full['merged']:.4f}")
    print(f"weight-sync bytes, adapter only (vLLM LoRA on GPU) LoRA / full: {lora['adapter'] / full['merged']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
