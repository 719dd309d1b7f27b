"""Vectorised box / point / mask geometry (numpy), in pixel coordinates.

Conventions of the VisionReasoner reference code (RCoT-Seg's thresholds match,
Veason-R1's ``batch_iou`` is the same formula without a threshold):

* boxes ``[x1, y1, x2, y2]`` with inclusive pixel bounds: area
  ``(x2-x1+1)*(y2-y1+1)``, intersection ``max(0, xB-xA+1)*max(0, yB-yA+1)``;
* box "L1" = mean absolute difference of the 4 coordinates;
* point "L1" = Euclidean distance between points (the papers' name, the code's formula);
* a point is in its box when ``x1 <= x <= x2 and y1 <= y <= y2``.

Rows containing NaN give NaN (distances) or 0 (IoU), so every threshold
comparison on them is False.
"""

from __future__ import annotations

import numpy as np


def _as_rows(a: np.ndarray, width: int) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1, width)


def box_iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray, strict_overlap: bool = False) -> np.ndarray:
    """IoU of every pair, +1-pixel convention.

    boxes_a ``M x 4``, boxes_b ``N x 4`` -> ``M x N`` in [0, 1]. A non-positive
    union or a NaN coordinate gives 0. ``strict_overlap`` (Seg-Zero's strict
    reward): the intersection counts only when ``xA < xB and yA < yB``.
    """
    a, b = _as_rows(boxes_a, 4), _as_rows(boxes_b, 4)
    with np.errstate(all="ignore"):
        return _box_iou(a, b, strict_overlap)


def _box_iou(a: np.ndarray, b: np.ndarray, strict_overlap: bool) -> np.ndarray:
    xa = np.maximum(a[:, None, 0], b[None, :, 0])
    ya = np.maximum(a[:, None, 1], b[None, :, 1])
    xb = np.minimum(a[:, None, 2], b[None, :, 2])
    yb = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.maximum(0.0, xb - xa + 1.0) * np.maximum(0.0, yb - ya + 1.0)
    if strict_overlap:
        inter = np.where((xa < xb) & (ya < yb), inter, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
    area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / union
    iou[~((union > 0) & np.isfinite(iou))] = 0.0
    return np.clip(iou, 0.0, 1.0, out=iou)


def box_l1_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Mean absolute coordinate difference of every pair: ``M x 4``, ``N x 4`` -> ``M x N``."""
    a, b = _as_rows(boxes_a, 4), _as_rows(boxes_b, 4)
    with np.errstate(all="ignore"):
        return np.abs(a[:, None, :] - b[None, :, :]).mean(axis=2)


def point_distance_matrix(points_a: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pair: ``M x 2``, ``N x 2`` -> ``M x N``."""
    a, b = _as_rows(points_a, 2), _as_rows(points_b, 2)
    with np.errstate(all="ignore"):
        return np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether point i lies in box i, inclusive bounds: ``M x 2``, ``M x 4`` -> ``M`` bool."""
    p, b = _as_rows(points, 2), _as_rows(boxes, 4)
    return (p[:, 0] >= b[:, 0]) & (p[:, 0] <= b[:, 2]) & (p[:, 1] >= b[:, 1]) & (p[:, 1] <= b[:, 3])


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two ``H x W`` bool masks; both empty -> 1.0 (DAVIS J convention)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred & gt) / union)


def l1_distance_transform(mask: np.ndarray) -> np.ndarray:
    """``H x W`` float32: L1 (city-block) distance of every pixel to the nearest mask pixel
    (0 on the mask). Requires a non-empty mask."""
    import cv2  # imported on use: importing the reward modules (the config schema does) stays cheap

    background = np.where(np.asarray(mask, dtype=bool), 0, 255).astype(np.uint8)
    return cv2.distanceTransform(background, cv2.DIST_L1, 3)


def l1_distance_to_mask(points: np.ndarray, mask: np.ndarray, transform: np.ndarray | None = None) -> np.ndarray:
    """Minimum L1 distance from each point to the mask's pixels.

    points ``K x 2`` (x, y) float, rounded to the nearest pixel; mask ``H x W``
    bool. Points outside the image add their L1 distance to the image border
    (exact for L1). Returns ``K`` float64: 0 on the mask, ``inf`` if the mask is
    empty, NaN for NaN points. ``transform``: a precomputed
    :func:`l1_distance_transform` of ``mask``.
    """
    p = _as_rows(points, 2)
    mask = np.asarray(mask, dtype=bool)
    out = np.full(p.shape[0], np.nan)
    if p.shape[0] == 0:
        return out
    if not mask.any():
        out[np.isfinite(p).all(axis=1)] = np.inf
        return out
    if transform is None:
        transform = l1_distance_transform(mask)
    h, w = mask.shape
    finite = np.isfinite(p).all(axis=1)
    q = np.floor(p[finite] + 0.5)
    cx = np.clip(q[:, 0], 0, w - 1)
    cy = np.clip(q[:, 1], 0, h - 1)
    outside = np.abs(q[:, 0] - cx) + np.abs(q[:, 1] - cy)
    out[finite] = transform[cy.astype(np.int64), cx.astype(np.int64)].astype(np.float64) + outside
    return out
