"""How the rewards reach the frozen vision models, and the model inputs they build.

* :func:`resolve_segmenter` / :func:`resolve_propagator`: the model passed by the
  caller, else (when allowed) the package default of :mod:`rewards.vision.factory`
  (``default_segmenter()`` / ``default_propagator()``, built on first use, cached),
  else None. A missing model is a logged, counted skip (:func:`note_skip`, :data:`SKIP_COUNTS`).
* :func:`load_rgb_resized`: keyframe / frame images resized to the model input size.
* :func:`object_prompt`: SAM-style cues from parsed answer cues under the
  malformed-cue rule of :mod:`rewards.vision.prompts` (an object whose box is
  malformed is not prompted at all, malformed points are left out; boxes partly
  outside the image are clipped into it), so no model ever sees a NaN,
  a reversed box or an out-of-image coordinate produced by the policy.
* :func:`run_segmenter`: one checked ``Segmenter.segment`` call.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from rewards.vision.base import ObjectPrompt, Propagator, Segmenter
from rewards.vision.prompts import box_defect, clip_box, clip_point, point_defect
from rewards.vision.factory import default_propagator, default_segmenter

logger = logging.getLogger("rewards")

#: Counted skips of model-based reward terms, by reason (for logs and metrics).
SKIP_COUNTS: Counter[str] = Counter()

_DEFAULTS: dict[str, Any] = {}
_MAKERS: dict[str, Callable[[], Any]] = {"segmenter": default_segmenter, "propagator": default_propagator}


def note_skip(reason: str, detail: str = "") -> None:
    """Count one skipped term; warn the first time a reason occurs, then log at debug level."""
    SKIP_COUNTS[reason] += 1
    log = logger.warning if SKIP_COUNTS[reason] == 1 else logger.debug
    log("reward term skipped (%s, %d so far)%s", reason, SKIP_COUNTS[reason], f": {detail}" if detail else "")


def _package_default(kind: str) -> Any:
    if kind not in _DEFAULTS:
        _DEFAULTS[kind] = _MAKERS[kind]()
    return _DEFAULTS[kind]


def reset_default_models() -> None:
    """Forget the cached package-default segmenter / propagator."""
    _DEFAULTS.clear()


def resolve_segmenter(segmenter: Segmenter | None, use_default: bool = True) -> Segmenter | None:
    """``segmenter``, else the package default (when ``use_default``), else None."""
    if segmenter is not None:
        return segmenter
    return _package_default("segmenter") if use_default else None


def resolve_propagator(propagator: Propagator | None, use_default: bool = True) -> Propagator | None:
    """``propagator``, else the package default (when ``use_default``), else None."""
    if propagator is not None:
        return propagator
    return _package_default("propagator") if use_default else None


def load_rgb_resized(path: str | Path, size_wh: tuple[int, int]) -> np.ndarray:
    """Image file -> ``H x W x 3`` uint8 RGB at ``size_wh = (W, H)`` (bilinear, aspect ignored).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth image not found: {path}")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != tuple(size_wh):
                rgb = rgb.resize(tuple(size_wh), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8).copy()
    except OSError as exc:
        raise ValueError(f"ground-truth image {path} cannot be read: {exc}") from exc


def object_prompt(
    box: np.ndarray | None, point: np.ndarray | None, neg_point: np.ndarray | None, size_wh: tuple[int, int]
) -> ObjectPrompt | None:
    """One object's cues -> an image-bounded :class:`ObjectPrompt`, or None when nothing may be prompted.

    box ``4``, point / neg_point ``2`` (x, y) in the pixels of a ``size_wh = (W, H)`` image;
    None = the answer has no such cue; a NaN row stands for a cue that is present but did
    not parse. The malformed-cue rule (:mod:`rewards.vision.prompts`): a malformed box
    (non-finite, reversed, no pixel in the image) means the object is not prompted at all
    (None: its mask is empty, whatever its points); a malformed point or negative point is
    left out. Kept cues are clipped into the image. The callers count the malformed cues
    (:mod:`rewards.cues`).
    """
    w, h = size_wh
    if box is not None and box_defect(box, h, w) is not None:
        return None
    points, labels = [], []
    for cue, label in ((point, 1), (neg_point, 0)):
        if cue is not None and point_defect(cue, h, w) is None:
            points.append(clip_point(cue, h, w))
            labels.append(label)
    if box is None and not points:
        return None
    out_box = None if box is None else clip_box(box, h, w)
    return ObjectPrompt(box=out_box, points=tuple(points), labels=tuple(labels))


def run_segmenter(segmenter: Segmenter, image: np.ndarray, prompt_sets: list[list[ObjectPrompt]]) -> list[np.ndarray]:
    """One ``segment`` call for all prompt sets; checks the result (n masks of the image's ``H x W``)."""
    masks = segmenter.segment(image, prompt_sets)
    h, w = image.shape[:2]
    if len(masks) != len(prompt_sets):
        raise ValueError(f"segmenter {type(segmenter).__name__} returned {len(masks)} masks for {len(prompt_sets)} prompt sets")
    out = []
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (h, w):
            raise ValueError(f"segmenter {type(segmenter).__name__} returned a {mask.shape} mask for a {(h, w)} image")
        out.append(mask)
    return out
