"""Bidirectional mask propagation for evaluation (``eval.propagator``: flow | sam2 | xmem).

All three implement :class:`rewards.segmentation.base.Propagator`: one pass keyframe ->
last frame, one keyframe -> first frame. ``flow`` (OpenCV optical flow) is the CPU
default without weights; ``sam2`` is the SAM2 video predictor built from
``eval.segmenter`` (config, checkpoint, image size, device; RCoT-Seg / Veason-R1);
``xmem`` is XMem as VISA runs it (VideoSeg-R1) with ``eval.xmem_checkpoint``. An empty
keyframe mask gives empty masks everywhere without running the propagator.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from rewards.segmentation.base import Propagator
from rewards.segmentation.factory import PROPAGATOR_NAMES, build_propagator

__all__ = ["PROPAGATOR_NAMES", "build_eval_propagator", "propagate_mask", "frames_per_second"]


def _existing(path: str, key: str) -> str:
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"{key} = {path!r}: checkpoint file not found")
    return path


def build_eval_propagator(eval_cfg: Any, **overrides: Any) -> Propagator:
    """The propagator named by ``eval_cfg.propagator`` (an :class:`rl.config.EvalConfig`).

    ``overrides`` go to the constructor (e.g. a smaller ``image_size`` / ``size`` in benchmarks).
    A configured checkpoint that does not exist raises ``FileNotFoundError`` naming the key.
    """
    name = eval_cfg.propagator
    if name == "flow":
        return build_propagator("flow", **overrides)
    if name == "sam2":
        seg = eval_cfg.segmenter
        kwargs = dict(sam2_config=seg.sam2_config, checkpoint=_existing(seg.checkpoint, "eval.segmenter.checkpoint"),
                      image_size=seg.image_size, device=seg.device)
        return build_propagator("sam2", **{**kwargs, **overrides})
    if name == "xmem":
        checkpoint = _existing(eval_cfg.xmem_checkpoint, "eval.xmem_checkpoint") or None
        kwargs = dict(checkpoint=checkpoint, device=eval_cfg.segmenter.device, size=eval_cfg.xmem_size)
        return build_propagator("xmem", **{**kwargs, **overrides})
    raise ValueError(f"unknown eval.propagator {name!r}; expected one of {list(PROPAGATOR_NAMES)}")


def propagate_mask(propagator: Propagator, frames: np.ndarray, keyframe: int, mask: np.ndarray) -> np.ndarray:
    """``T x H x W`` bool masks from the keyframe ``mask`` (``H x W``) over ``frames`` (``T x H x W x 3``).

    An all-False ``mask`` returns all-False masks without calling the propagator; the
    propagator's output shape is checked.
    """
    frames = np.asarray(frames)
    mask = np.asarray(mask, dtype=bool)
    expected = frames.shape[:3]
    if mask.shape != expected[1:]:
        raise ValueError(f"keyframe mask shape {mask.shape} does not match the frames {expected[1:]}")
    if not mask.any():
        return np.zeros(expected, dtype=bool)
    out = np.asarray(propagator.propagate(frames, keyframe, mask), dtype=bool)
    if out.shape != expected:
        raise RuntimeError(f"{type(propagator).__name__} returned masks of shape {out.shape}, expected {expected}")
    return out


def frames_per_second(propagator: Propagator, frames: np.ndarray, keyframe: int, mask: np.ndarray,
                      repeats: int = 1) -> float:
    """Propagated frames per second (``T - 1`` frames per call, best of ``repeats`` calls)."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        propagate_mask(propagator, frames, keyframe, mask)
        best = min(best, time.perf_counter() - start)
    return (len(frames) - 1) / best if best > 0 else float("inf")
