"""The malformed-cue rule in the rewards that prompt a segmenter (VideoSeg-R1, Veason-R1).

A cue of an answer is malformed when it is present but unusable
(docs/rewards.md#malformed-cues; the geometric tests are
:func:`rewards.vision.prompts.box_defect` / :func:`~rewards.vision.prompts.point_defect`):

* a box that is not 4 finite numbers, is reversed (``x2 < x1`` or ``y2 < y1``) or has no
  pixel in the ``W x H`` input image;
* a point or negative point that is not 2 finite numbers or whose nearest pixel is
  outside the image.

A malformed cue scores 0 on every term: its box / point row is replaced by NaN before
the box and point terms (which score NaN rows 0; the answer-format terms and the
``invalid_item_policy``, which look at the JSON shape only, are unchanged); it is not
given to the segmenter, and an item whose box is malformed is not prompted at all, so
its object's mask is empty; a malformed negative point adds 0 to ``negative_point``.
Each is counted in the per-response marker ``malformed_cues`` (logged as
``reward/malformed_cues``). Without the image size (no ``input_size`` / masks in the
ground truth) only the non-finite and reversed tests apply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rewards.grounding import GroundingAnswer, GroundingGroup
from rewards.parsing import BOX_KEY, NEG_POINT_KEY, POINT_KEY, ParsedItems, coerce_vector, slice_items
from rewards.vision.base import ObjectPrompt
from rewards.vision.prompts import box_defect, point_defect
from rewards.vision.resolve import object_prompt

_NAN_BOX, _NAN_POINT = np.full(4, np.nan), np.full(2, np.nan)


@dataclass(frozen=True)
class AnswerCues:
    """The usable cues of one grounding answer (M capped items).

    prompts: segmenter prompts of the items that may be prompted (empty without the image size);
    box_malformed / point_malformed: ``M`` bool, rows to blank before the box and point terms;
    malformed: number of malformed cues (boxes, points, negative points).
    """

    prompts: list[ObjectPrompt]
    box_malformed: np.ndarray
    point_malformed: np.ndarray
    malformed: int


def _present(item: dict, key: str, row: np.ndarray, valid: bool, nan_row: np.ndarray) -> np.ndarray | None:
    """The cue under ``key``: None if absent, its parsed row, or NaN if present but unparsable."""
    if key not in item:
        return None
    return row if valid else nan_row


def answer_cues(answer: GroundingAnswer, size_wh: tuple[int, int] | None) -> AnswerCues:
    """Apply the malformed-cue rule to one answer's items (``bbox_2d``, ``point_2d``, ``neg_point_2d``)."""
    w, h = size_wh if size_wh is not None else (None, None)
    parsed = answer.parsed
    box_bad = np.zeros(parsed.count, dtype=bool)
    point_bad = np.zeros(parsed.count, dtype=bool)
    prompts, malformed = [], 0
    for i, item in enumerate(answer.items):
        if not isinstance(item, dict):
            continue
        box = _present(item, BOX_KEY, parsed.boxes[i], parsed.box_valid[i], _NAN_BOX)
        point = _present(item, POINT_KEY, parsed.points[i], parsed.point_valid[i], _NAN_POINT)
        neg_vec = coerce_vector(item.get(NEG_POINT_KEY), 2)
        neg = _present(item, NEG_POINT_KEY, np.asarray(neg_vec or _NAN_POINT), neg_vec is not None, _NAN_POINT)
        box_bad[i] = box is not None and box_defect(box, h, w) is not None
        point_bad[i] = point is not None and point_defect(point, h, w) is not None
        malformed += int(box_bad[i]) + int(point_bad[i]) + int(neg is not None and point_defect(neg, h, w) is not None)
        if size_wh is not None:
            prompt = object_prompt(box, point, neg, size_wh)
            if prompt is not None:
                prompts.append(prompt)
    return AnswerCues(prompts, box_bad, point_bad, malformed)


def blank_malformed(group: GroundingGroup, cues: list[AnswerCues]) -> GroundingGroup:
    """``group`` with the malformed box / point rows set to NaN (validity flags unchanged), so the
    box and point terms score them 0; ``group`` itself when nothing is malformed."""
    box_bad = np.concatenate([c.box_malformed for c in cues]) if cues else np.zeros(0, dtype=bool)
    point_bad = np.concatenate([c.point_malformed for c in cues]) if cues else np.zeros(0, dtype=bool)
    if not box_bad.any() and not point_bad.any():
        return group
    boxes, points = group.stacked.boxes.copy(), group.stacked.points.copy()
    boxes[box_bad] = np.nan
    points[point_bad] = np.nan
    stacked = ParsedItems(boxes, points, group.stacked.box_valid, group.stacked.point_valid)
    offsets = group.offsets
    answers = [dataclasses.replace(a, parsed=slice_items(stacked, offsets[i], offsets[i + 1]))
               for i, a in enumerate(group.answers)]
    return GroundingGroup(answers, stacked, offsets)


def malformed_box_rows(boxes: np.ndarray, valid: np.ndarray, size_wh: tuple[int, int] | None) -> tuple[np.ndarray, int]:
    """Bare box lists (Veason-R1): boxes ``M x 4`` (NaN rows where ``valid`` ``M`` is False) ->
    (``M`` bool: parsed boxes that are reversed or off the image, to blank; malformed count,
    unparsable entries included)."""
    w, h = size_wh if size_wh is not None else (None, None)
    bad = np.array([bool(ok) and box_defect(b, h, w) is not None for b, ok in zip(boxes, valid)], dtype=bool)
    return bad, int(bad.sum() + np.count_nonzero(~np.asarray(valid, dtype=bool)))
