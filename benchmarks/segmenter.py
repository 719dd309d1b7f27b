"""Segmenter-reward path: per-group embedding cache vs one embedding per response.

For ``--groups`` GRPO groups of ``--n`` responses, each group sharing one keyframe,
times the mask step of the reward (cues -> keyframe masks):

* cached: one ``segment(image, all n prompt sets)`` call per group (the image is
  embedded once and the n responses' prompts are decoded in batches);
* uncached: ``segment(image, [one prompt set])`` per response with the embedding
  cache off (``cache_size=0``), i.e. the image is re-embedded for every response.

SAM2 runs with random weights (timing only); GrabCut, which has no embedding, is
timed the same two ways for reference. Run standalone::

    python benchmarks/segmenter.py [--groups 4] [--n 8] [--sam2-size 256] [--frame 224] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.vision.base import ObjectPrompt, Segmenter  # noqa: E402


def make_groups(groups: int, n: int, frame: int, seed: int) -> list[tuple[np.ndarray, list[list[ObjectPrompt]]]]:
    """Per group: a ``frame x frame x 3`` uint8 keyframe with a disc, and n jittered box + point prompt sets."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(groups):
        ys, xs = np.mgrid[0:frame, 0:frame]
        image = np.stack([40 + 150 * xs / frame, 40 + 150 * ys / frame, np.full(xs.shape, 90.0)], -1)
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        cx, cy = (int(v) for v in rng.integers(frame // 4, 3 * frame // 4, 2))
        r = frame // 8
        cv2.circle(image, (cx, cy), r, (220, 60, 200), -1)
        sets = []
        for _ in range(n):
            jx, jy = rng.normal(0, r / 5, 2)
            box = (cx - r + jx, cy - r + jy, cx + r + jx, cy + r + jy)
            sets.append([ObjectPrompt(box=box, points=((cx + jx, cy + jy), (cx + 1.5 * r, cy)), labels=(1, 0))])
        out.append((image, sets))
    return out


def time_path(segment_group: Callable[[np.ndarray, Sequence], None], data, repeats: int) -> float:
    """Best-of-``repeats`` seconds to run ``segment_group`` over all groups."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for image, sets in data:
            segment_group(image, sets)
        best = min(best, time.perf_counter() - start)
    return best


def compare(name: str, cached: Segmenter, uncached: Segmenter, data, repeats: int, clear: Callable[[], None]) -> None:
    def per_group(image, sets):
        cached.segment(image, sets)

    def per_response(image, sets):
        for prompt_set in sets:
            uncached.segment(image, [prompt_set])

    def cached_run(image, sets):
        clear()   # a new group = a new keyframe: the cache only helps within the group
        per_group(image, sets)

    per_group(*data[0])   # warm-up (first forward passes, JIT)
    t_cached = time_path(cached_run, data, repeats)
    t_uncached = time_path(per_response, data, repeats)
    responses = sum(len(sets) for _, sets in data)
    print(f"{name:>8}: one call per group {t_cached * 1e3:8.1f} ms   one call per response {t_uncached * 1e3:8.1f} ms   "
          f"ratio {t_uncached / t_cached:5.2f}x   ({len(data)} groups, {responses} responses)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--n", type=int, default=8, help="responses per group")
    parser.add_argument("--frame", type=int, default=224, help="keyframe side in pixels")
    parser.add_argument("--sam2-size", type=int, default=256, help="SAM2 input resolution (multiple of 32)")
    parser.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_t.yaml")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared CPUs)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sam2", action="store_true")
    args = parser.parse_args(argv)

    data = make_groups(args.groups, args.n, args.frame, args.seed)

    from rewards.vision.grabcut import GrabCutSegmenter

    grabcut = GrabCutSegmenter()
    compare("grabcut", grabcut, grabcut, data, args.repeats, clear=lambda: None)

    if not args.skip_sam2:
        import torch

        from rewards.vision.sam2_image import Sam2ImageSegmenter

        torch.set_num_threads(args.threads)
        cached = Sam2ImageSegmenter(args.sam2_config, image_size=args.sam2_size, cache_size=8)
        uncached = Sam2ImageSegmenter(image_size=args.sam2_size, cache_size=0, model=cached.model)
        compare(f"sam2@{args.sam2_size}", cached, uncached, data, args.repeats, clear=cached.clear_cache)
        print(f"          sam2 embeddings computed: cached path {cached.stats['embeddings_computed']}, "
              f"uncached path {uncached.stats['embeddings_computed']}")


if __name__ == "__main__":
    main()
