"""Evaluation pipeline: propagator speed and where a pipeline run spends its time.

1. Frames per second of each propagator on one synthetic clip (keyframe in the middle,
   both directions; ``T - 1`` propagated frames per call, best of ``--repeats``):
   ``flow`` (OpenCV optical flow), ``sam2`` (SAM2.1-tiny video predictor, random
   weights, ``--sam2-size`` px) and ``xmem`` (XMem, random weights, shorter side
   ``--xmem-size`` px). Random weights give meaningless masks: timing only.
2. One :class:`rl.eval.pipeline.EvalPipeline` run on a small synthetic set with the
   tiny random Qwen2.5-VL policy (built offline) answering the hierarchical sampler's
   questions: seconds and share of each stage (loading, sampler, grounding,
   segmentation, propagation, writing, scoring), all from that one run. The untrained
   policy's KTG answers are unusable (empty masks, nothing to propagate), so by default
   the grounding uses GT cues (``eval.oracle_cues``) and segmentation / propagation do
   real work; ``--policy-grounding`` asks the policy instead (its generate time is then
   the grounding share).

Run standalone::

    python benchmarks/eval.py [--frames 16] [--size 112] [--sam2-size 256] [--xmem-size 112]
                              [--videos 3] [--propagator flow] [--policy-grounding] [--threads 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")     # sam2's per-call progress bars

from data.readers import open_dataset  # noqa: E402
from data.synthetic import generate_synthetic_dataset  # noqa: E402
from rl.config import EvalConfig, SyntheticConfig, load_config  # noqa: E402
from rl.eval.propagate import build_eval_propagator, frames_per_second  # noqa: E402


def clip(root: Path, frames: int, size: int) -> tuple[np.ndarray, int, np.ndarray]:
    """``(T x H x W x 3 frames, keyframe, H x W mask)`` of the first expression with a target."""
    cfg = SyntheticConfig(num_videos=1, num_frames=frames, height=size, width=size, max_speed=0.02, seed=3)
    folder = generate_synthetic_dataset(root, cfg, "bench")
    reader = open_dataset(folder.parent, "synthetic", "bench")
    sample = reader[reader.video_ids()[0]]
    exp_id = next(e for e, x in sample.expressions.items() if x.obj_ids)
    video = np.stack([sample.load_frame(t) for t in range(sample.num_frames)])
    keyframe = sample.num_frames // 2
    mask = sample.expression_mask(exp_id, keyframe)
    if not mask.any():
        mask[size // 3: size // 2, size // 3: size // 2] = True
    return video, keyframe, mask


def propagator_fps(args: argparse.Namespace, root: Path) -> dict[str, float]:
    video, keyframe, mask = clip(root, args.frames, args.size)
    overrides = {"flow": {}, "sam2": {"image_size": args.sam2_size}, "xmem": {"size": args.xmem_size}}
    out = {}
    for name, kw in overrides.items():
        ev = EvalConfig(propagator=name)
        try:
            start = time.perf_counter()
            propagator = build_eval_propagator(ev, **kw)
            build_s = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - a missing optional backend is reported, not fatal
            print(f"  {name:<5} unavailable: {type(exc).__name__}: {exc}")
            continue
        frames_per_second(propagator, video, keyframe, mask, repeats=1)          # warm-up
        fps = frames_per_second(propagator, video, keyframe, mask, repeats=args.repeats)
        out[name] = fps
        print(f"  {name:<5} {fps:8.2f} frames/s   (build {build_s:.1f} s)")
    return out


def pipeline_shares(args: argparse.Namespace, root: Path) -> dict:
    from rl.config import TinyModelConfig
    from rl.eval.pipeline import EvalPipeline, resolve_dataset
    from rl.models.tiny import build_tiny_qwen25vl

    policy = build_tiny_qwen25vl(root / "tiny", TinyModelConfig(), image_size=112)
    cfg = load_config([
        "recipe=quickstart", "eval.progress=false", f"eval.dataset_root={root / 'data'}", "eval.dataset_format=synthetic",
        f"eval.propagator={args.propagator}", "eval.sampler=hierarchical", "eval.sampler_frame_size=[112,112]",
        "eval.sampler_max_frames=8", "eval.sampler_max_tokens=32", "rollout.max_response_length=48",
        "eval.htfs_num_intervals=3", "eval.htfs_num_positions=3",
        f"data.synthetic.num_videos={args.videos}", f"data.synthetic.num_frames={args.frames}",
        f"data.synthetic.height={args.size}", f"data.synthetic.width={args.size}",
        f"eval.xmem_size={args.xmem_size}", f"eval.segmenter.image_size={args.sam2_size}",
        f"eval.oracle_cues={'false' if args.policy_grounding else 'true'}",
    ])
    data_root, fmt, split = resolve_dataset(cfg)
    pipeline = EvalPipeline(cfg, str(policy))
    summary = pipeline.run(data_root, fmt, split, str(root / "out"))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112, help="frame side of the synthetic clips")
    parser.add_argument("--sam2-size", type=int, default=256)
    parser.add_argument("--xmem-size", type=int, default=112)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--propagator", default="flow", choices=("flow", "sam2", "xmem"),
                        help="propagator of the pipeline run")
    parser.add_argument("--policy-grounding", action="store_true",
                        help="ground with the (untrained) tiny policy instead of GT cues")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        root = Path(tmp)
        print(f"propagators: {args.frames} frames of {args.size}x{args.size}, keyframe in the middle, "
              f"torch threads {args.threads}")
        fps = propagator_fps(args, root)
        if "flow" in fps:
            ratios = ", ".join(f"{k} {fps['flow'] / v:.1f}x slower" for k, v in fps.items() if k != "flow")
            print(f"  relative to flow: {ratios}")
        summary = pipeline_shares(args, root)
        timing, share = summary["timing_s"], summary["timing_share"]
        print(f"\npipeline run: {summary['num_videos']} videos, {args.frames} frames, tiny policy, "
              f"hierarchical sampler, {'policy' if args.policy_grounding else 'GT'} cues, {args.propagator} "
              f"propagator; total {sum(timing.values()):.1f} s "
              f"({summary['seconds_per_video']:.2f} s/video)")
        for stage, seconds in timing.items():
            print(f"  {stage:<13} {seconds:7.2f} s  {100 * share[stage]:5.1f} %")
        mllm = summary["mllm"]
        print(f"  MLLM: sampler {mllm.get('sampler_calls', 0)} calls / {mllm.get('sampler_prompts', 0)} prompts, "
              f"policy {mllm.get('policy_calls', 0)} calls / {mllm.get('policy_prompts', 0)} prompts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
