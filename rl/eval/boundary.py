"""Boundary F-measure (the DAVIS "F" score), numpy/OpenCV only.

Behaviour matched (not code) from ``davis2017-evaluation/davis2017/metrics.py``
(``f_measure``, ``_seg2bmap``), which the MeViS, ReVOS and VISA evaluation
tools reuse unchanged:

* **Boundary map** (:func:`seg2bmap`): pixel ``(y, x)`` is a boundary pixel
  when its value differs from its east, south or south-east neighbour. On the
  last row only the east neighbour is compared, on the last column only the
  south neighbour, and the bottom-right pixel is never a boundary. The image
  outside is *not* compared: a mask touching the border has no boundary along
  that border, and a mask covering the whole frame has no boundary at all.
  (For an interior pixel this is "its 2 x 2 block with the east, south and
  south-east neighbours is not uniform".) The reference's optional resize to a
  different ``width``/``height`` is never used by ``f_measure``; it is left out.
* **Tolerance** (:func:`boundary_tolerance_pixels`): ``bound_pix =
  ceil(bound_th * sqrt(H^2 + W^2))`` when ``bound_th < 1``, else ``bound_th``
  pixels.
* **Dilation** by ``skimage.morphology.disk(bound_pix)`` (default
  ``strict_radius=True``): the ``(2r+1) x (2r+1)`` footprint of integer offsets
  with ``dy^2 + dx^2 <= r^2``, applied with ``cv2.dilate`` (pixels outside the
  image never contribute). A boundary pixel of one mask is matched when a
  boundary pixel of the other lies within Euclidean distance ``bound_pix``.
* **Special cases**: no predicted boundary but a GT one -> P=1, R=0 (F=0);
  a predicted boundary but none in GT -> P=0, R=1 (F=0); neither -> F=1.
  ``F = 2PR / (P + R)``, 0 when ``P + R == 0``.

Not supported: DAVIS "void" pixels (none of MeViS/ReVOS/Ref-YouTube-VOS have them).
"""

from __future__ import annotations

import math
from typing import Union

import cv2
import numpy as np

DEFAULT_BOUND_TH = 0.008

FloatOrArray = Union[float, np.ndarray]


def _as_bool_frames(name: str, mask: np.ndarray) -> np.ndarray:
    """``mask`` (``H x W`` or ``T x H x W``, any dtype; non-zero = foreground) as bool."""
    arr = np.asarray(mask)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{name} must be H x W or T x H x W, got shape {arr.shape}")
    if arr.shape[-1] == 0 or arr.shape[-2] == 0:
        raise ValueError(f"{name} has an empty frame size: shape {arr.shape}")
    return arr if arr.dtype == np.bool_ else arr != 0


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask (DAVIS ``_seg2bmap`` rule, see module doc).

    Args:
        mask: ``H x W`` or ``T x H x W`` (any leading dims), non-zero = foreground.

    Returns:
        bool array of the same shape.
    """
    seg = np.asarray(mask)
    if seg.ndim < 2:
        raise ValueError(f"seg2bmap needs at least 2 dims (H x W), got shape {seg.shape}")
    seg = seg if seg.dtype == np.bool_ else seg != 0
    bmap = np.zeros_like(seg, dtype=bool)
    top_left = seg[..., :-1, :-1]
    bmap[..., :-1, :-1] = (
        (top_left != seg[..., :-1, 1:]) | (top_left != seg[..., 1:, :-1]) | (top_left != seg[..., 1:, 1:])
    )
    bmap[..., -1, :-1] = seg[..., -1, :-1] != seg[..., -1, 1:]   # last row: east only
    bmap[..., :-1, -1] = seg[..., :-1, -1] != seg[..., 1:, -1]   # last column: south only
    return bmap                                                  # bottom-right stays False


def boundary_tolerance_pixels(height: int, width: int, bound_th: float = DEFAULT_BOUND_TH) -> int:
    """Matching tolerance in pixels for an ``height x width`` frame.

    ``ceil(bound_th * sqrt(height^2 + width^2))`` when ``bound_th < 1`` (0.008:
    5 px for 480 x 360, 8 px for 854 x 480, 12 px for 1280 x 720, 18 px for
    1920 x 1080), else ``bound_th`` itself, which must then be a whole number of pixels.
    """
    if not math.isfinite(bound_th) or bound_th < 0:
        raise ValueError(f"bound_th must be a finite number >= 0, got {bound_th!r}")
    if bound_th >= 1:
        if float(bound_th) != int(bound_th):
            raise ValueError(f"bound_th >= 1 is a pixel count and must be a whole number, got {bound_th!r}")
        return int(bound_th)
    # Same float64 operations as the reference (norm of the shape vector).
    return int(math.ceil(bound_th * math.sqrt(float(height * height + width * width))))


def disk_footprint(radius: int) -> np.ndarray:
    """``(2r+1) x (2r+1)`` uint8 disk: 1 where ``dy^2 + dx^2 <= r^2`` (skimage ``disk`` semantics)."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius * radius).astype(np.uint8)


def _f_from_boundaries(gt_b: np.ndarray, pred_b: np.ndarray, footprint: np.ndarray) -> float:
    """F of one frame from ``H x W`` bool boundary maps."""
    n_gt = int(np.count_nonzero(gt_b))
    n_pred = int(np.count_nonzero(pred_b))
    if n_gt == 0 and n_pred == 0:
        return 1.0
    if n_gt == 0 or n_pred == 0:
        return 0.0   # (P, R) = (1, 0) or (0, 1)
    # Crop to the bounding box of both boundaries: every pixel a match is looked up at and
    # every pixel that can cover it lies inside, and pixels outside the image never count.
    both = gt_b | pred_b
    rows = np.flatnonzero(both.any(axis=1))
    cols = np.flatnonzero(both.any(axis=0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    gt_b, pred_b = gt_b[crop], pred_b[crop]
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), footprint).astype(bool)
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), footprint).astype(bool)
    precision = np.count_nonzero(pred_b & gt_dil) / n_pred
    recall = np.count_nonzero(gt_b & pred_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2.0 * precision * recall / (precision + recall))


def boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = DEFAULT_BOUND_TH) -> FloatOrArray:
    """Boundary F-measure per frame.

    Args:
        gt: ``H x W`` or ``T x H x W`` ground truth, non-zero = foreground.
        pred: prediction of the same shape.
        bound_th: tolerance as a fraction of the frame diagonal (< 1) or in pixels (>= 1).

    Returns:
        ``float`` for ``H x W`` input, ``(T,)`` float64 array for ``T x H x W``.
    """
    gt_arr = _as_bool_frames("gt", gt)
    pred_arr = _as_bool_frames("pred", pred)
    if gt_arr.shape != pred_arr.shape:
        raise ValueError(f"gt shape {gt_arr.shape} and pred shape {pred_arr.shape} differ")
    height, width = gt_arr.shape[-2:]
    footprint = disk_footprint(boundary_tolerance_pixels(height, width, bound_th))
    gt_b = seg2bmap(gt_arr)
    pred_b = seg2bmap(pred_arr)
    if gt_arr.ndim == 2:
        return _f_from_boundaries(gt_b, pred_b, footprint)
    return np.array([_f_from_boundaries(g, p, footprint) for g, p in zip(gt_b, pred_b)], dtype=np.float64)
