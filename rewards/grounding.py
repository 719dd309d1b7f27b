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
    parse_answer_json,
    parse_items,
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


def parse_grounding(response: str, max_objects: int, strict_numeric_format: bool = False) -> GroundingAnswer:
    """Parse one response; never raises."""
    ok, data = parse_answer_json(response)
    is_list = ok and isinstance(data, list)
    fmt_box, fmt_point = answer_format_score(data if is_list else None, strict_numeric_format)
    items = cap(data, max_objects) if is_list else []
    return GroundingAnswer(think_format_ok(response), fmt_box, fmt_point, is_list, items, parse_items(items))


def grounding_accuracy(
    answer: GroundingAnswer,
    gt_boxes: np.ndarray,
    gt_points: np.ndarray,
    thresholds: tuple[float, float, float],
    alphas: Sequence[float],
    invalid_item_policy: str,
    max_objects: int,
) -> float:
    """Hungarian accuracy in ``[0, sum(alphas)]`` of one parsed answer.

    thresholds = (IoU, box L1, point distance). GT lists are capped like the
    prediction. ``invalid_item_policy="zero"``: a non-list answer or any
    malformed item gives 0 (reference behaviour); ``"unmatched"``: malformed
    items score only their valid sub-terms.
    """
    if not answer.is_list:
        return 0.0
    if invalid_item_policy == "zero" and not answer.items_valid:
        return 0.0
    n_gt = gt_boxes.shape[0] if max_objects < 0 else min(gt_boxes.shape[0], max_objects)
    gt_boxes, gt_points = gt_boxes[:n_gt], gt_points[:n_gt]
    score = pair_score_matrix(answer.parsed, gt_boxes, gt_points, *thresholds, weights=alphas)
    return matched_accuracy(score, answer.parsed.count, n_gt, float(sum(alphas)))
