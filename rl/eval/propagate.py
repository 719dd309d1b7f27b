"""Evaluation's use of the propagator (``eval.propagator``: flow | sam2 | xmem).

:func:`build_eval_propagator` hands the ``eval.*`` settings to
:func:`rewards.vision.factory.build_propagator` (which knows the backends: ``flow``, the
CPU default without weights; ``sam2``, the SAM2 video predictor of ``eval.segmenter``;
``xmem``, XMem with ``eval.xmem_checkpoint``). :func:`propagate_mask` runs one
bidirectional pass with checked shapes; an empty keyframe mask gives empty masks
everywhere without running the propagator.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rewards.vision.base import Propagator
from rewards.vision.factory import PROPAGATOR_NAMES, build_propagator

__all__ = ["PROPAGATOR_NAMES", "build_eval_propagator", "propagate_mask", "frames_per_second"]


def build_eval_propagator(eval_cfg: Any, **overrides: Any) -> Propagator:
    """The propagator named by ``eval_cfg.propagator`` (an :class:`rl.config.EvalConfig`).

    ``overrides`` go to the constructor (e.g. a smaller ``image_size`` / ``size`` in benchmarks).
    A configured checkpoint that does not exist raises ``FileNotFoundError`` naming the ``eval.*`` key.
    """
    return build_propagator(eval_cfg.propagator, segmenter=eval_cfg.segmenter, xmem_checkpoint=eval_cfg.xmem_checkpoint,
                            xmem_size=eval_cfg.xmem_size, key_prefix="eval.", **overrides)


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
