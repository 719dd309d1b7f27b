"""Reward throughput on a GRPO batch, library vs a straightforward per-pair Python loop.

    python benchmarks/rewards.py [--prompts 16] [--n 8] [--max-objects 10] [--repeats 20]

A batch is ``prompts`` ground truths (1..max_objects objects each, 840 x 840
coordinates) with ``n`` sampled responses each (noisy copies of the ground
truth with dropped / extra objects, some malformed). The library scores each
group with ``rewards.compute_group``; the baseline below re-implements the
VisionReasoner reward naively (per-pair Python loops to build the score
matrix, then scipy's Hungarian). Both totals are checked to agree, and the
rewards/second of both are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards import compute_group  # noqa: E402

SIZE = 840


# ------------------------------------------------------------- naive baseline


def naive_visionreasoner(response: str, gt_objects: list[dict]) -> float:
    """VisionReasoner reward (max 7) with plain Python loops over every (pred, gt) pair."""
    think = 1.0 if re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", response, re.S) else 0.0
    fmt = acc = 0.0
    match = re.search(r"<answer>\s*(.*?)\s*</answer>", response, re.S)
    try:
        data = json.loads(match.group(1)) if match else None
    except ValueError:
        data = None
    if isinstance(data, list) and data:
        for item in data:
            if isinstance(item, dict):
                fmt += (isinstance(item.get("bbox_2d"), list) and len(item["bbox_2d"]) == 4) / len(data)
                fmt += (isinstance(item.get("point_2d"), list) and len(item["point_2d"]) == 2) / len(data)
    if isinstance(data, list):
        try:
            preds = [(list(map(float, d["bbox_2d"])), list(map(float, d["point_2d"]))) for d in data[:120]]
            if any(len(b) != 4 or len(p) != 2 for b, p in preds):
                raise ValueError
            gts = [(o["bbox_2d"], o["point_2d"]) for o in gt_objects[:120]]
            scores = [[0.0] * len(gts) for _ in preds]
            for i, (pb, pp) in enumerate(preds):
                inside = pb[0] <= pp[0] <= pb[2] and pb[1] <= pp[1] <= pb[3]
                for j, (gb, gp) in enumerate(gts):
                    inter = max(0.0, min(pb[2], gb[2]) - max(pb[0], gb[0]) + 1) * max(
                        0.0, min(pb[3], gb[3]) - max(pb[1], gb[1]) + 1)
                    union = (pb[2] - pb[0] + 1) * (pb[3] - pb[1] + 1) + (gb[2] - gb[0] + 1) * (gb[3] - gb[1] + 1) - inter
                    iou = inter / union if union > 0 else 0.0
                    l1 = sum(abs(a - b) for a, b in zip(pb, gb)) / 4
                    dist = math.hypot(pp[0] - gp[0], pp[1] - gp[1])
                    scores[i][j] = (iou > 0.5) + (l1 < 10) + (dist < 30 and inside)
            if preds and gts:
                rows, cols = linear_sum_assignment(np.array(scores), maximize=True)
                acc = sum(scores[r][c] for r, c in zip(rows, cols)) / max(len(preds), len(gts))
        except (KeyError, TypeError, ValueError):
            acc = 0.0
    sentences = [s.strip() for s in response.split(".") if s.strip()]
    repeats = len(sentences) - len(set(sentences))
    return think + fmt + acc + (0.0 if repeats >= 2 else 1.0)


# ------------------------------------------------------------------ batch


def make_batch(prompts: int, n: int, max_objects: int, seed: int) -> list[tuple[list[dict], list[str]]]:
    """``prompts`` (gt objects, n responses) pairs."""
    rng = np.random.default_rng(seed)
    batch = []
    for _ in range(prompts):
        k = int(rng.integers(1, max_objects + 1))
        objs = []
        for _ in range(k):
            x1, y1 = rng.integers(0, SIZE - 100, 2)
            x2, y2 = x1 + rng.integers(20, 100), y1 + rng.integers(20, 100)
            objs.append({"bbox_2d": [int(x1), int(y1), int(x2), int(y2)],
                         "point_2d": [int((x1 + x2) // 2), int((y1 + y2) // 2)]})
        responses = []
        for _ in range(n):
            pred = []
            for o in objs:
                if rng.random() < 0.15:
                    continue
                jitter = rng.normal(0, 8, 6).round().astype(int)
                pred.append({"bbox_2d": [int(v + d) for v, d in zip(o["bbox_2d"], jitter[:4])],
                             "point_2d": [int(v + d) for v, d in zip(o["point_2d"], jitter[4:])]})
            if rng.random() < 0.3:
                pred.append({"bbox_2d": [10, 10, 60, 60], "point_2d": [30, 30]})
            if rng.random() < 0.05:
                pred.append({"bbox_2d": "oops"})
            think = " ".join(f"Step {i} looks at object {i}." for i in range(int(rng.integers(3, 12))))
            responses.append(f"<think>{think}</think><answer>{json.dumps(pred)}</answer>")
        batch.append((objs, responses))
    return batch


def _time_interleaved(fns: dict, repeats: int) -> dict:
    """Best CPU seconds (``time.process_time``) of each function, runs interleaved so that
    load from other processes on a shared machine hits all implementations alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-objects", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    batch = make_batch(args.prompts, args.n, args.max_objects, args.seed)
    total = args.prompts * args.n

    def library() -> list[float]:
        return [r["score"] for objs, resps in batch
                for r in compute_group("visionreasoner", resps, {"objects": objs}, use_default_models=False)]

    def naive() -> list[float]:
        return [naive_visionreasoner(r, objs) for objs, resps in batch for r in resps]

    def ktg() -> None:
        for objs, resps in batch:
            compute_group("rcot_ktg", resps, {"objects": objs}, use_default_models=False)

    diff = max(abs(a - b) for a, b in zip(library(), naive()))
    best = _time_interleaved({"library": library, "naive": naive, "ktg": ktg}, args.repeats)
    t_lib, t_naive, t_ktg = best["library"], best["naive"], best["ktg"]

    print(f"GRPO batch: {args.prompts} prompts x {args.n} responses x 1..{args.max_objects} objects "
          f"= {total} rewards (best CPU time of {args.repeats} interleaved runs)")
    print(f"{'implementation':<38}{'seconds':>10}{'rewards/s':>12}")
    print(f"{'rewards.compute_group visionreasoner':<38}{t_lib:>10.4f}{total / t_lib:>12.0f}")
    print(f"{'naive per-pair loop visionreasoner':<38}{t_naive:>10.4f}{total / t_naive:>12.0f}")
    print(f"{'rewards.compute_group rcot_ktg':<38}{t_ktg:>10.4f}{total / t_ktg:>12.0f}")
    print(f"speed-up library / naive: {t_naive / t_lib:.2f}x   (max |score difference| = {diff:.2e})")
    return 0 if diff < 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
