"""Interfaces of the frozen vision models behind rewards and evaluation.

A :class:`Segmenter` turns per-object cues on one image into masks (SAM2, or a
classical CPU default); a :class:`Propagator` carries a keyframe mask through
a video (XMem, SAM2 video predictor, or a classical CPU default). The reward
workers and the evaluation pipeline use the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ObjectPrompt:
    """Cues for one object, in the pixel coordinates of the image passed with them.

    ``box``: ``[x1, y1, x2, y2]`` or None; ``points``: ``K x 2`` (x, y);
    ``labels``: ``K`` ints, 1 positive / 0 negative.
    """

    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = field(default_factory=tuple)
    labels: tuple[int, ...] = field(default_factory=tuple)


@runtime_checkable
class Segmenter(Protocol):
    def segment(self, image: np.ndarray, prompt_sets: Sequence[Sequence[ObjectPrompt]]) -> list[np.ndarray]:
        """Segment one image under several prompt sets (e.g. the n responses of a GRPO group).

        image: ``H x W x 3`` uint8 RGB. prompt_sets: one sequence of object prompts per
        response. Returns one ``H x W`` bool mask per prompt set: the union (OR) of its
        objects' masks; an empty prompt set gives an all-False mask. The image is
        encoded once for all prompt sets.
        """
        ...


@runtime_checkable
class Propagator(Protocol):
    def propagate(self, frames: Sequence[np.ndarray] | np.ndarray, keyframe: int, mask: np.ndarray) -> np.ndarray:
        """Carry ``mask`` (``H x W`` bool on ``frames[keyframe]``) through the video in both directions.

        frames: ``T x H x W x 3`` uint8 RGB. Returns ``T x H x W`` bool; the keyframe's entry
        equals ``mask``; an all-False keyframe mask gives all-False masks everywhere.
        """
        ...
