"""Shared pieces of the box+point grounding rewards (VisionReasoner, RCoT-Seg KTG, VideoSeg-R1).

The answer is a JSON list of ``{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y]}``
(VideoSeg-R1 adds ``"neg_point_2d": [x,y]``) in the first ``<answer>`` block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from rewards.matching import matched_accuracy, pair_score_matrix
from rewards.parsing import (
    ParsedItems,
    answer_format_score,
    cap,
    item_rows,
    items_from_rows,
    parse_answer_json,
    slice_items,
    think_format_ok,
)


@dataclass(frozen=True)
class GroundingAnswer:
    """One parsed response: think format, format halves, capped items and their cues."""

    think_ok: bool
    format_box: float          # fraction of items with bbox_2d a list of 4, [0, 1]
    format_point: float        # fraction of items with point_2d a list of 2, [0, 1]
    is_list: bool              # the answer parsed as a JSON list
    items: list[Any]           # answer items after capping at max_objects
    parsed: ParsedItems        # cues of ``items``

    @property
    def items_valid(self) -> bool:
        """Every capped item is a dict with a valid box and point (the reference's numpy conversion succeeds)."""
        return self.is_list and self.parsed.all_valid


@dataclass(frozen=True)
class GroundingGroup:
    """The parsed responses of one group; ``stacked`` holds every answer's cues, answer i
    in rows ``offsets[i]:offsets[i+1]``."""

    answers: list[GroundingAnswer]
    stacked: ParsedItems
    offsets: np.ndarray


def parse_grounding_group(responses: Sequence[str], max_objects: int, strict_numeric_format: bool = False) -> GroundingGroup:
    """Parse every response of a group (one vectorised cue conversion for all); never raises."""
    heads, box_rows, point_rows, counts = [], [], [], []
    for response in responses:
        ok, data = parse_answer_json(response)
        is_list = ok and isinstance(data, list)
        fmt_box, fmt_point = answer_format_score(data if is_list else None, strict_numeric_format)
        items = cap(data, max_objects) if is_list else []
        boxes, points = item_rows(items)
        box_rows.extend(boxes)
        point_rows.extend(points)
        counts.append(len(items))
        heads.append((think_format_ok(response), fmt_box, fmt_point, is_list, items))
    stacked = items_from_rows(box_rows, point_rows)
    offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    answers = [
        GroundingAnswer(*head, parsed=slice_items(stacked, offsets[i], offsets[i + 1]))
        for i, head in enumerate(heads)
    ]
    return GroundingGroup(answers, stacked, offsets)


def parse_grounding(response: str, max_objects: int, strict_numeric_format: bool = False) -> GroundingAnswer:
    """Parse one response; never raises."""
    return parse_grounding_group([response], max_objects, strict_numeric_format).answers[0]


def grounding_accuracies(
    group: GroundingGroup,
    gt_boxes: np.ndarray,
    gt_points: np.ndarray,
    thresholds: tuple[float, float, float],
    alphas: Sequence[float],
    invalid_item_policy: str,
    max_objects: int,
) -> list[float]:
    """Hungarian accuracy in ``[0, sum(alphas)]`` of each parsed answer of one group.

    thresholds = (IoU, box L1, point distance). GT lists are capped like the
    predictions. ``invalid_item_policy="zero"``: a non-list answer or any
    malformed item gives 0 (reference behaviour); ``"unmatched"``: malformed
    items score only their valid sub-terms. The score matrix of all answers'
    rows is computed in one vectorised pass, then matched per answer.
    """
    n_gt = gt_boxes.shape[0] if max_objects < 0 else min(gt_boxes.shape[0], max_objects)
    gt_boxes, gt_points = gt_boxes[:n_gt], gt_points[:n_gt]
    score = pair_score_matrix(group.stacked, gt_boxes, gt_points, *thresholds, weights=alphas)
    empty_value = float(sum(alphas))
    out = []
    for i, answer in enumerate(group.answers):
        if not answer.is_list or (invalid_item_policy == "zero" and not answer.items_valid):
            out.append(0.0)
            continue
        rows = score[group.offsets[i]: group.offsets[i + 1]]
        out.append(matched_accuracy(rows, rows.shape[0], n_gt, empty_value))
    return out

