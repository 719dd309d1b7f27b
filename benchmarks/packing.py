"""Actor update with token-budget micro-batches vs today's fixed-size padded micro-batches.

A GRPO batch with long-tailed response lengths (lognormal: median ``--median`` tokens, 99th
percentile ``--p99``, cut at ``--max-len``) and one image prompt per row goes through one
``PolicyWorker.update_policy`` of the tiny Qwen2.5-VL (one rank, in this process) three ways:

* fixed: ``ppo_micro_batch_size_per_worker`` rows per micro-batch in batch order, each padded
  to its longest prompt and response (``actor.max_tokens_per_micro_batch=0``, the default);
* budget: ``actor.max_tokens_per_micro_batch=--max-tokens`` with ``actor.packing=--packing``
  (``auto`` = padded on CPU / sdpa: rows of similar length grouped, padding trimmed per
  micro-batch; ``packed`` = rows concatenated without padding, the flash-attention 2 path,
  on sdpa a block-diagonal mask, so no faster on a CPU);
* the number of tokens each forward/backward processed (padded micro-batch: rows x width).

The median of ``--repeats`` timed updates (after one warm-up) is reported, with tokens/s over
the batch's valid tokens. The last line is the ratio budget / fixed update time. Run::

    python benchmarks/packing.py [--rows 32] [--micro-batch 8] [--max-tokens 2048] [--packing auto]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rl.config import ActorConfig, ModelConfig, OptimConfig, TinyModelConfig  # noqa: E402


def lognormal_lengths(rows: int, median: float, p99: float, max_len: int, seed: int) -> list[int]:
    """``rows`` response lengths: lognormal with the given median and 99th percentile, in [1, max_len]."""
    sigma = math.log(p99 / median) / 2.3263478740   # z of the 99th percentile
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.clip(np.round(rng.lognormal(math.log(median), sigma, rows)), 1, max_len)]


def build_batch(model_dir: Path, lengths: list[int], seed: int):
    """EncodedBatch of image prompts + random responses of ``lengths``, advantages, old / ref log-probs."""
    from rl.models.inputs import encode_for_training
    from rl.models.loading import load_processor

    processor = load_processor(model_dir)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    samples = [{"prompt": "Find the red circle that moves " + "left " * int(rng.integers(0, 20)), "images": [image]}
               for _ in lengths]
    responses = [[int(t) for t in rng.integers(40, 1000, n)] for n in lengths]
    batch = encode_for_training(processor, samples, responses)
    mask = batch.response_mask.float()
    gen = torch.Generator().manual_seed(seed)
    adv = torch.randn(len(lengths), 1, generator=gen).expand_as(mask) * mask
    old = -torch.rand(mask.shape, generator=gen) * mask
    return batch, adv, old, old.clone()


def time_update(model_dir: Path, batch, adv, old, ref, budget: int, packing: str, micro: int, repeats: int):
    """Median seconds of one update_policy, and the tokens its forward passes processed."""
    from rl.workers.batching import padded_cost, plan_micro_batches, plan_token_micro_batches, row_lengths
    from rl.workers.policy import PolicyWorker

    cfg = ActorConfig(ppo_mini_batch_size=len(batch), ppo_micro_batch_size_per_worker=micro,
                      max_tokens_per_micro_batch=budget, packing=packing, optim=OptimConfig(lr=1e-6))
    worker = PolicyWorker(str(model_dir), ModelConfig(), cfg, total_steps=repeats + 1)
    rows = list(range(len(batch)))
    prompt, response = row_lengths(batch)
    plan = (plan_token_micro_batches(rows, prompt, response, budget, worker.packs_rows) if budget
            else plan_micro_batches(rows, micro))
    processed = sum(sum(prompt[i] + response[i] for i in m.rows) if worker.packs_rows
                    else padded_cost(m.rows, prompt, response) for m in plan)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        worker.update_policy(batch, adv, old, ref)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), processed, len(plan), worker.packs_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=32, help="sequences in the batch")
    parser.add_argument("--median", type=float, default=150, help="median response length")
    parser.add_argument("--p99", type=float, default=1000, help="99th percentile of the response length")
    parser.add_argument("--max-len", type=int, default=1024, help="longest response")
    parser.add_argument("--micro-batch", type=int, default=8, help="fixed micro-batch size (today's path)")
    parser.add_argument("--max-tokens", type=int, default=2048, help="actor.max_tokens_per_micro_batch")
    parser.add_argument("--packing", default="auto", choices=("auto", "padded", "packed"), help="actor.packing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from rl.models.tiny import build_tiny_qwen25vl

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_qwen25vl(Path(tmp) / "policy", TinyModelConfig(), image_size=112)
        lengths = lognormal_lengths(args.rows, args.median, args.p99, args.max_len, args.seed)
        batch, adv, old, ref = build_batch(model_dir, lengths, args.seed)
        valid = int(batch.attention_mask.sum())
        print(f"batch: {args.rows} rows, response length median {statistics.median(lengths):.0f}, "
              f"p99 {np.percentile(lengths, 99):.0f}, max {max(lengths)}; {valid} valid tokens "
              f"(prompt + response); padded to the batch: {batch.input_ids.numel()} tokens")
        results = {}
        for name, budget, packing in (("fixed", 0, "auto"), ("budget", args.max_tokens, args.packing)):
            seconds, processed, count, packed = time_update(model_dir, batch, adv, old, ref, budget, packing,
                                                            args.micro_batch, args.repeats)
            results[name] = seconds
            how = "packed" if packed else "padded"
            print(f"{name:7s} ({how}, {count} micro-batches): update {seconds:.3f} s, {processed} tokens processed "
                  f"({processed / valid:.2f}x the valid ones), {valid / seconds:.0f} valid tokens/s")
        print(f"token-budget / fixed-size update time: {results['budget'] / results['fixed']:.2f}")


if __name__ == "__main__":
    main()
