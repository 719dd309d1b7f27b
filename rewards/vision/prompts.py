"""Validation and normalisation of segmenter inputs shared by every backend.

Model outputs become :class:`~rewards.vision.base.ObjectPrompt` objects, so
prompts may carry malformed cues. **The malformed-cue rule** (one rule for the
backends and for every reward term, docs/rewards.md#malformed-cues):

* a box ``[x1, y1, x2, y2]`` is malformed when a coordinate is not finite, when it
  is reversed (``x2 < x1`` or ``y2 < y1``), or when none of its pixels lies in the
  image (:func:`box_defect`). Boxes cover pixels ``x1..x2`` x ``y1..y2`` inclusive
  (the +1-pixel convention), so a finite box that is not reversed has an area of at
  least one pixel (``x1 == x2`` is one pixel column): the zero-area boxes are exactly
  the reversed ones;
* a point is malformed when a coordinate is not finite or its nearest pixel (half-up
  rounding) is outside the image (:func:`point_defect`).

Malformed cues are *dropped before the model sees them and counted*, never raised
on; a box partly outside the image is clipped into it (:func:`clip_box`). Only
programming errors (wrong image dtype/shape, points and labels of different
lengths, labels other than 0/1) raise a ``ValueError`` that names the offending value.
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


def box_defect(box: Sequence[float], height: int | None = None, width: int | None = None) -> str | None:
    """Why ``box`` ``[x1, y1, x2, y2]`` is malformed: ``"non_finite"``, ``"reversed"`` or
    ``"outside_image"`` (no pixel of it in a ``height x width`` image); None if usable.

    Without the image size only the first two are checked.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return "non_finite"
    if x2 < x1 or y2 < y1:
        return "reversed"
    if height is not None and width is not None and box_to_pixel_slice((x1, y1, x2, y2), height, width) is None:
        return "outside_image"
    return None


def point_defect(point: Sequence[float], height: int | None = None, width: int | None = None) -> str | None:
    """Why ``point`` ``(x, y)`` is malformed: ``"non_finite"`` or ``"outside_image"`` (its half-up
    rounded pixel is not in a ``height x width`` image); None if usable."""
    x, y = (float(v) for v in point)
    if not (math.isfinite(x) and math.isfinite(y)):
        return "non_finite"
    if height is not None and width is not None:
        px, py = round_half_up(x), round_half_up(y)
        if not (0 <= px < width and 0 <= py < height):
            return "outside_image"
    return None


def clip_box(box: Sequence[float], height: int, width: int) -> tuple[float, float, float, float]:
    """A usable box clipped into ``[0, width - 1] x [0, height - 1]`` (covers the same image pixels)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(max(x1, 0.0), width - 1.0), min(max(y1, 0.0), height - 1.0),
            min(max(x2, 0.0), width - 1.0), min(max(y2, 0.0), height - 1.0))


def clip_point(point: Sequence[float], height: int, width: int) -> tuple[float, float]:
    """A usable point clipped into ``[0, width - 1] x [0, height - 1]``."""
    return min(max(float(point[0]), 0.0), width - 1.0), min(max(float(point[1]), 0.0), height - 1.0)


def clean_prompt(prompt: ObjectPrompt, stats: Counter, height: int | None = None, width: int | None = None) -> CleanPrompt:
    """Drop the malformed cues of ``prompt`` (module docstring), counting each drop in ``stats``.

    Counters: ``boxes_dropped`` (non-finite or reversed), ``points_dropped`` (non-finite)
    and, when the image size is given, ``boxes_outside_image`` / ``points_outside_image``;
    with the size the kept box and points are also clipped into the image. Without it
    (GrabCut and the box filler check the image bounds themselves, with the same rule)
    only non-finite and reversed cues are dropped.
    """
    check_prompt(prompt)
    sized = height is not None and width is not None
    box = None
    if prompt.box is not None:
        defect = box_defect(prompt.box, height, width)
        if defect is None:
            box = clip_box(prompt.box, height, width) if sized else tuple(float(v) for v in prompt.box)
        else:
            stats["boxes_outside_image" if defect == "outside_image" else "boxes_dropped"] += 1
    pts, labs = [], []
    for point, lab in zip(prompt.points, prompt.labels):
        defect = point_defect(point, height, width)
        if defect is None:
            pts.append(clip_point(point, height, width) if sized else (float(point[0]), float(point[1])))
            labs.append(int(lab))
        else:
            stats["points_outside_image" if defect == "outside_image" else "points_dropped"] += 1
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
