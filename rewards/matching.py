"""Hungarian matching of predicted and ground-truth objects (RCoT-Seg Eq. 8-12).

Binary per-pair matrices ``S_iou = IoU > eta``, ``S_box = L1 < gamma_box``,
``S_pt = dist < gamma_pt AND point in its own predicted box``;
``S = a_iou S_iou + a_box S_box + a_pt S_pt``; a one-to-one assignment
maximising ``S`` (``scipy.optimize.linear_sum_assignment``);
``R_a = sum of matched S / max(N_pred, N_gt)``. This equals VisionReasoner's
``(3 * matched - matched cost) / max(N_pred, N_gt)`` with cost ``3 - S``.
Both lists empty: the empty prediction is exactly right, ``R_a = sum(weights)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rewards.geometry import box_iou_matrix, box_l1_matrix, point_distance_matrix, points_in_boxes
from rewards.parsing import ParsedItems, parse_items


def hungarian_max(score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Maximum-total one-to-one assignment of an ``M x N`` score matrix.

    Returns (rows ``K``, cols ``K``, total) with ``K = min(M, N)``; non-finite
    scores count as 0. An empty matrix gives empty indices and total 0.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 2 or score.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, 0.0
    if not np.isfinite(score).all():
        score = np.nan_to_num(score, nan=0.0, posinf=0.0, neginf=0.0)
    from scipy.optimize import linear_sum_assignment  # imported on use: keeps importing the rewards cheap

    rows, cols = linear_sum_assignment(score, maximize=True)
    return rows, cols, float(score[rows, cols].sum())


def max_assignment_total(score: np.ndarray) -> float:
    """Total of :func:`hungarian_max` with shortcuts for trivial matrices (empty, all zero, one row/column)."""
    if score.size == 0:
        return 0.0
    if score.shape[0] == 1 or score.shape[1] == 1:
        return float(score.max()) if np.isfinite(score).all() else hungarian_max(score)[2]
    if not score.any():
        return 0.0
    return hungarian_max(score)[2]


def pair_score_matrix(
    pred: ParsedItems,
    gt_boxes: np.ndarray,
    gt_points: np.ndarray,
    eta: float = 0.5,
    gamma_box: float = 10.0,
    gamma_pt: float = 30.0,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """``S`` of Eq. 11: ``M x N`` from M parsed predictions and N ground-truth objects.

    gt_boxes ``N x 4``, gt_points ``N x 2``. Invalid prediction cues (NaN rows)
    score 0 on the sub-terms that need them.
    """
    a_iou, a_box, a_pt = (float(w) for w in weights)
    iou = box_iou_matrix(pred.boxes, gt_boxes)
    with np.errstate(invalid="ignore"):
        s_iou = iou > eta
        s_box = box_l1_matrix(pred.boxes, gt_boxes) < gamma_box
        in_box = points_in_boxes(pred.points, pred.boxes)
        s_pt = (point_distance_matrix(pred.points, gt_points) < gamma_pt) & in_box[:, None]
    gt_box_valid = np.isfinite(np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)).all(axis=1)
    s_iou &= pred.box_valid[:, None] & gt_box_valid[None, :]
    return a_iou * s_iou + a_box * s_box + a_pt * s_pt


def matched_accuracy(score: np.ndarray, n_pred: int, n_gt: int, empty_value: float) -> float:
    """Sum of the Hungarian-matched scores / ``max(n_pred, n_gt)``; ``empty_value`` if both are 0."""
    if max(n_pred, n_gt) == 0:
        return float(empty_value)
    return max_assignment_total(score) / max(n_pred, n_gt)


def _as_item_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def hungarian_accuracy(
    pred: Sequence[dict],
    gt: Sequence[dict],
    eta: float = 0.5,
    gamma_box: float = 10.0,
    gamma_pt: float = 30.0,
    weights: Sequence[float] = (1.0, 1.0, 1.0),
) -> float:
    """RCoT-Seg answer accuracy ``R_a`` (Eq. 8-12), in ``[0, sum(weights)]``.

    pred, gt: lists of ``{"bbox_2d": [x1, y1, x2, y2], "point_2d": [x, y]}``.
    Malformed prediction items (not a dict, missing / non-numeric / non-finite
    cues) stay in ``N_pred`` and score only the sub-terms whose cues are valid;
    malformed ground-truth items likewise match nothing. Never raises on pred.
    """
    pred_items = parse_items(_as_item_list(pred))
    gt_items = parse_items(_as_item_list(gt))
    score = pair_score_matrix(pred_items, gt_items.boxes, gt_items.points, eta, gamma_box, gamma_pt, weights)
    return matched_accuracy(score, pred_items.count, gt_items.count, sum(float(w) for w in weights))
