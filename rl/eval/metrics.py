"""Evaluation metrics: DAVIS J / F, ReVOS robustness R, image gIoU / cIoU, RCoT-Seg diagnostics.

Definitions: docs/evaluation.md#metrics. Behaviour matched (not code) from
davis2017-evaluation (J, F), the MeViS / VISA / ReVOS tools (per-expression
aggregation, R) and LISA's validation loop (gIoU / cIoU). All mask inputs
accept any dtype; non-zero = foreground.

Public API::

    db_iou(gt, pred)                          -> J per frame
    boundary_f(gt, pred, bound_th=0.008)      -> F per frame       (rl.eval.boundary)
    seg2bmap(mask)                            -> boundary map      (rl.eval.boundary)
    j_and_f(gt_T, pred_T, bound_th=0.008)     -> (J mean, F mean) of one expression
    revos_robustness_per_frame(gt_T, pred_T, foreground_T) -> R per frame
    revos_robustness(gt_T, pred_T, foreground_T)           -> R of one expression
    giou_ciou(pairs)                          -> (gIoU, cIoU) over images
    keyframe_area_ratio(area_chosen, area_max)
    box_iou(boxes_a, boxes_b)                 -> IoU, +1-pixel convention (rewards.geometry)
    MetricAccumulator / ExpressionScore       -> summary      (rl.eval.accumulator)
"""

from __future__ import annotations

from typing import Iterable, Union

import numpy as np

from rl.eval.accumulator import ExpressionScore, MetricAccumulator
from rl.eval.boundary import (
    DEFAULT_BOUND_TH,
    boundary_f,
    boundary_tolerance_pixels,
    disk_footprint,
    seg2bmap,
)

FloatOrArray = Union[float, np.ndarray]

__all__ = [
    "DEFAULT_BOUND_TH",
    "ExpressionScore",
    "MetricAccumulator",
    "boundary_f",
    "boundary_tolerance_pixels",
    "box_iou",
    "db_iou",
    "disk_footprint",
    "giou_ciou",
    "j_and_f",
    "keyframe_area_ratio",
    "revos_robustness",
    "revos_robustness_per_frame",
    "seg2bmap",
]


def _as_bool(name: str, mask: np.ndarray, ndims: tuple[int, ...] = (2, 3)) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim not in ndims:
        want = " or ".join({2: "H x W", 3: "T x H x W"}[n] for n in ndims)
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    return arr if arr.dtype == np.bool_ else arr != 0


def _check_same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError("shapes differ: " + ", ".join(f"{k}={v}" for k, v in shapes.items()))


def db_iou(gt: np.ndarray, pred: np.ndarray) -> FloatOrArray:
    """Region similarity J (Jaccard index) per frame; a frame with both masks empty scores 1.

    Args:
        gt: ``H x W`` or ``T x H x W`` ground truth.
        pred: prediction of the same shape.

    Returns:
        ``float`` for ``H x W`` input, ``(T,)`` float64 array for ``T x H x W``.
    """
    gt_arr, pred_arr = _as_bool("gt", gt), _as_bool("pred", pred)
    _check_same_shape(gt=gt_arr, pred=pred_arr)
    inter = np.count_nonzero(gt_arr & pred_arr, axis=(-2, -1))
    union = np.count_nonzero(gt_arr | pred_arr, axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1)).astype(np.float64)
    return float(j) if gt_arr.ndim == 2 else j


def j_and_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> tuple[float, float]:
    """(J, F) of one expression: per-frame J and F averaged over its ``T`` frames (fractions, not x100).

    Args:
        gt: ``T x H x W`` union mask of the expression's objects (``H x W`` = one frame).
        pred: prediction of the same shape.
    """
    gt_arr, pred_arr = _as_bool("gt", gt), _as_bool("pred", pred)
    _check_same_shape(gt=gt_arr, pred=pred_arr)
    if gt_arr.ndim == 3 and gt_arr.shape[0] == 0:
        raise ValueError("j_and_f needs at least one frame, got T = 0")
    return float(np.mean(db_iou(gt_arr, pred_arr))), float(np.mean(boundary_f(gt_arr, pred_arr, bound_th)))


def revos_robustness_per_frame(gt: np.ndarray, pred: np.ndarray, foreground: np.ndarray) -> FloatOrArray:
    """ReVOS robustness per frame: ``max(1 - FP / |foreground|, 0)``.

    ``FP`` = predicted pixels outside the expression's GT (for a no-target
    expression, every predicted pixel); ``foreground`` = union of all annotated
    objects of the video on that frame (ReVOS ``mask_dict_foreground``). A frame
    with an empty foreground scores 1 without false positives, else 0 (what the
    reference's ``FP / (|fg| + 1e-6)`` gives; we divide exactly otherwise).
    Pixels count once however many objects overlap there (the reference adds
    uint8 object masks, which under/overflows where objects overlap).

    Args:
        gt, pred, foreground: ``H x W`` or ``T x H x W``, same shape.

    Returns:
        ``float`` for ``H x W`` input, ``(T,)`` float64 array for ``T x H x W``.
    """
    gt_arr, pred_arr, fg_arr = _as_bool("gt", gt), _as_bool("pred", pred), _as_bool("foreground", foreground)
    _check_same_shape(gt=gt_arr, pred=pred_arr, foreground=fg_arr)
    false_pos = np.count_nonzero(pred_arr & ~gt_arr, axis=(-2, -1))
    fg_area = np.count_nonzero(fg_arr, axis=(-2, -1))
    r = np.where(
        fg_area == 0,
        (false_pos == 0).astype(np.float64),
        np.maximum(1.0 - false_pos / np.maximum(fg_area, 1), 0.0),
    ).astype(np.float64)
    return float(r) if gt_arr.ndim == 2 else r


def revos_robustness(gt: np.ndarray, pred: np.ndarray, foreground: np.ndarray) -> float:
    """R of one expression: :func:`revos_robustness_per_frame` averaged over its frames (fraction).

    The ReVOS/VISA tool computes it for every expression; its summary averages
    it per split (referring, reasoning) and overall = mean of the two split
    means, like J and F (see :class:`MetricAccumulator`).
    """
    per_frame = np.atleast_1d(revos_robustness_per_frame(gt, pred, foreground))
    if per_frame.size == 0:
        raise ValueError("revos_robustness needs at least one frame, got T = 0")
    return float(per_frame.mean())


def giou_ciou(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Image segmentation scores over ``(gt, pred)`` pairs of ``H x W`` masks (sizes may differ per pair).

    gIoU = mean per-image IoU (an image with both masks empty scores 1);
    cIoU = sum of intersections / sum of unions (0 when every union is empty,
    as LISA's ``I / (U + 1e-10)`` gives). Fractions, not x100.
    """
    ious: list[float] = []
    inter_sum = union_sum = 0
    for index, (gt, pred) in enumerate(pairs):
        gt_arr, pred_arr = _as_bool(f"gt[{index}]", gt, (2,)), _as_bool(f"pred[{index}]", pred, (2,))
        _check_same_shape(gt=gt_arr, pred=pred_arr)
        inter = int(np.count_nonzero(gt_arr & pred_arr))
        union = int(np.count_nonzero(gt_arr | pred_arr))
        ious.append(1.0 if union == 0 else inter / union)
        inter_sum += inter
        union_sum += union
    if not ious:
        raise ValueError("giou_ciou needs at least one (gt, pred) pair")
    return float(np.mean(ious)), (inter_sum / union_sum if union_sum else 0.0)


def keyframe_area_ratio(area_chosen: FloatOrArray, area_max: FloatOrArray) -> FloatOrArray:
    """RCoT-Seg diagnostic: GT area on the chosen keyframe / largest GT area over the video.

    1 means the chosen frame is a largest-area frame. When the target is absent
    from the whole video (``area_max == 0``) every frame is equally good: 1.
    Broadcasts over arrays.
    """
    chosen = np.asarray(area_chosen, dtype=np.float64)
    best = np.asarray(area_max, dtype=np.float64)
    if np.any(chosen < 0) or np.any(chosen > best):
        raise ValueError(f"need 0 <= area_chosen <= area_max, got {area_chosen!r} and {area_max!r}")
    ratio = np.where(best == 0, 1.0, chosen / np.where(best == 0, 1.0, best))
    return float(ratio) if ratio.ndim == 0 else ratio


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> FloatOrArray:
    """RCoT-Seg diagnostic "box IoU before SAM2": IoU of ``[x1, y1, x2, y2]`` pixel boxes.

    +1-pixel convention (``area = (x2-x1+1)*(y2-y1+1)``), computed by
    :func:`rewards.geometry.box_iou_matrix` so evaluation and rewards agree.

    Args:
        boxes_a: one box ``(4,)`` or ``M x 4``.
        boxes_b: one box ``(4,)`` or ``N x 4``.

    Returns:
        ``float`` when both are single boxes, else the ``M x N`` IoU matrix.
    """
    from rewards.geometry import box_iou_matrix

    a, b = np.asarray(boxes_a, dtype=np.float64), np.asarray(boxes_b, dtype=np.float64)
    for name, arr in (("boxes_a", a), ("boxes_b", b)):
        if arr.shape[-1:] != (4,) or arr.ndim > 2:
            raise ValueError(f"{name} must be (4,) or N x 4, got shape {arr.shape}")
    matrix = box_iou_matrix(a.reshape(-1, 4), b.reshape(-1, 4))
    return float(matrix[0, 0]) if a.ndim == 1 and b.ndim == 1 else matrix
