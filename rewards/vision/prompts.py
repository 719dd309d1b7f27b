"""Validation and normalisation of segmenter inputs shared by every backend.

Model outputs become :class:`~rewards.vision.base.ObjectPrompt` objects, so
prompts may be degenerate (reversed or non-finite boxes, points outside the
image). Those are *skipped and counted*, never raised on; only programming
errors (wrong image dtype/shape, points and labels of different lengths, labels
other than 0/1) raise a ``ValueError`` that names the offending value.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rewards.vision.base import ObjectPrompt

POSITIVE, NEGATIVE = 1, 0


def check_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as a C-contiguous ``H x W x 3`` uint8 array or raise ``ValueError``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"segmenter image must be H x W x 3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"segmenter image is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


def check_prompt(prompt: ObjectPrompt) -> None:
    """Raise ``ValueError`` for structurally wrong prompts (a caller bug, not a model output)."""
    if not isinstance(prompt, ObjectPrompt):
        raise ValueError(f"expected an ObjectPrompt, got {type(prompt).__name__}: {prompt!r}")
    if len(prompt.points) != len(prompt.labels):
        raise ValueError(f"ObjectPrompt has {len(prompt.points)} points but {len(prompt.labels)} labels: {prompt!r}")
    bad = [lab for lab in prompt.labels if lab not in (POSITIVE, NEGATIVE)]
    if bad:
        raise ValueError(f"ObjectPrompt labels must be 1 (positive) or 0 (negative), got {bad}: {prompt!r}")
    if prompt.box is not None and len(prompt.box) != 4:
        raise ValueError(f"ObjectPrompt box must be [x1, y1, x2, y2], got {prompt.box!r}")
    for point in prompt.points:
        if len(point) != 2:
            raise ValueError(f"ObjectPrompt point must be (x, y), got {point!r}")


@dataclass(frozen=True)
class CleanPrompt:
    """A prompt with degenerate parts removed.

    ``box``: ``(x1, y1, x2, y2)`` float with ``x1 <= x2`` and ``y1 <= y2``, or None.
    ``points``: ``K x 2`` float array (x, y); ``labels``: ``K`` int array (1 / 0).
    """

    box: tuple[float, float, float, float] | None
    points: np.ndarray
    labels: np.ndarray


def clean_prompt(prompt: ObjectPrompt, stats: Counter) -> CleanPrompt:
    """Drop non-finite or reversed boxes and non-finite points, counting each drop in ``stats``.

    Counters: ``boxes_dropped`` (non-finite or ``x2 < x1`` / ``y2 < y1``), ``points_dropped``.
    """
    check_prompt(prompt)
    box = None
    if prompt.box is not None:
        x1, y1, x2, y2 = (float(v) for v in prompt.box)
        if all(math.isfinite(v) for v in (x1, y1, x2, y2)) and x2 >= x1 and y2 >= y1:
            box = (x1, y1, x2, y2)
        else:
            stats["boxes_dropped"] += 1
    pts, labs = [], []
    for (x, y), lab in zip(prompt.points, prompt.labels):
        if math.isfinite(float(x)) and math.isfinite(float(y)):
            pts.append((float(x), float(y)))
            labs.append(int(lab))
        else:
            stats["points_dropped"] += 1
    points = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return CleanPrompt(box=box, points=points, labels=np.asarray(labs, dtype=np.int64))


def round_half_up(value: float) -> int:
    """``int(v + 0.5)`` rounding for non-negative pixel coordinates (floor(v + 0.5) in general)."""
    return int(math.floor(value + 0.5))


def box_to_pixel_slice(box: Sequence[float], height: int, width: int) -> tuple[slice, slice] | None:
    """Inclusive pixel rectangle of ``box`` clipped to an ``height x width`` image.

    The box ``[x1, y1, x2, y2]`` covers the pixel columns ``x1..x2`` and rows ``y1..y2``
    inclusive (the +1-pixel convention of docs/rewards.md) after half-up rounding.
    Returns ``(rows, cols)`` slices, or None when nothing of the box lies in the image.
    """
    x1, y1, x2, y2 = (round_half_up(float(v)) for v in box)
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, width - 1), min(y2, height - 1)
    if x2 < x1 or y2 < y1:
        return None
    return slice(y1, y2 + 1), slice(x1, x2 + 1)


PromptKey = tuple


def prompt_key(prompt: ObjectPrompt) -> PromptKey:
    """Hashable identity of a prompt (callers may pass lists instead of tuples)."""
    box = None if prompt.box is None else tuple(float(v) for v in prompt.box)
    points = tuple((float(x), float(y)) for x, y in prompt.points)
    return box, points, tuple(int(v) for v in prompt.labels)


def unique_prompts(prompt_sets: Sequence[Sequence[ObjectPrompt]]) -> dict[PromptKey, ObjectPrompt]:
    """Distinct object prompts over all prompt sets, keyed by :func:`prompt_key`, in first-seen order.

    The n responses of a GRPO group often repeat the same cues; backends segment
    each distinct object once and OR the results per prompt set.
    """
    seen: dict[PromptKey, ObjectPrompt] = {}
    for prompts in prompt_sets:
        for prompt in prompts:
            check_prompt(prompt)
            seen.setdefault(prompt_key(prompt), prompt)
    return seen


def union_per_set(
    prompt_sets: Sequence[Sequence[ObjectPrompt]],
    object_masks: dict[PromptKey, np.ndarray | None],
    height: int,
    width: int,
) -> list[np.ndarray]:
    """OR the per-object ``H x W`` bool masks of each prompt set (None = skipped object)."""
    out = []
    for prompts in prompt_sets:
        mask = np.zeros((height, width), dtype=bool)
        for prompt in prompts:
            obj = object_masks.get(prompt_key(prompt))
            if obj is not None:
                mask |= obj
        out.append(mask)
    return out
