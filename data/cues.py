"""Spatial cues from binary masks: boxes, inscribed-circle points, negative points, keyframes, resizing.

Conventions used throughout this module:

* Masks are ``H x W`` boolean arrays (anything non-zero counts as foreground);
  stacks of masks are ``T x H x W``.
* Pixel coordinates are integer ``(x, y)`` = (column, row), inclusive: a box
  ``[x1, y1, x2, y2]`` covers columns ``x1..x2`` and rows ``y1..y2``.
* **Sizes are always ``[W, H]``** (width first), as in ``DataConfig.input_size``
  and OpenCV's ``dsize``; array shapes are ``(H, W)``.
* Coordinates move between an image of size ``[W, H]`` and the model input of
  size ``[in_W, in_H]`` (aspect ratio ignored) with ``int(v * f + 0.5)``,
  ``f = in_W / W`` for x and ``f = in_H / H`` for y (VisionReasoner / RCoT-Seg
  rule); the inverse mapping is the same function with the sizes swapped.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "mask_to_box",
    "inscribed_circle_point",
    "negative_points",
    "l1_distance_to_mask",
    "frame_areas",
    "keyframe_index",
    "top_k_frames",
    "scale_coord",
    "scale_box",
    "scale_point",
    "resize_image",
    "resize_mask",
]


def _as_bool_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D H x W array, got shape {arr.shape}")
    return arr.astype(bool, copy=False)


# ----------------------------------------------------------------------------- boxes


def mask_to_box(mask: np.ndarray) -> list[int] | None:
    """Tight box ``[x1, y1, x2, y2]`` (inclusive pixel coords) from the mask's extreme pixels.

    mask: ``H x W`` (bool or any numeric; non-zero = foreground). Returns None for an
    empty mask. Every foreground pixel lies inside the box and each box edge touches
    at least one foreground pixel.
    """
    m = _as_bool_mask(mask)
    cols = np.flatnonzero(m.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(m.any(axis=1))
    return [int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])]


# ---------------------------------------------------------------------- positive point


def inscribed_circle_point(mask: np.ndarray) -> list[int] | None:
    """Centre ``[x, y]`` of the maximum inscribed circle of the mask (always a mask pixel).

    mask: ``H x W``. The Euclidean distance of every foreground pixel to the nearest
    background pixel is computed with ``cv2.distanceTransform`` (``DIST_L2``,
    ``DIST_MASK_PRECISE``) on the mask **padded by one background pixel on every
    side**, so the image border counts as outside: an object cut by the border gets
    its point in the middle of its visible part, not glued to the border.

    Tie-break (deterministic): among the pixels within 1e-4 of the maximum distance,
    take the one nearest to their centroid (so a bar of constant thickness gets its
    middle, not an end); remaining ties go to the smallest row, then column. Returns
    None for an empty mask.
    """
    m = _as_bool_mask(mask)
    if not m.any():
        return None
    padded = np.pad(m.astype(np.uint8), 1, mode="constant", constant_values=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    best = float(dist.max())
    ys, xs = np.nonzero(dist >= best - 1e-4)
    cy, cx = ys.mean(), xs.mean()
    d2 = (ys - cy) ** 2 + (xs - cx) ** 2
    order = np.lexsort((xs, ys, np.round(d2, 9)))  # primary: distance to centroid, then row, then column
    i = int(order[0])
    return [int(xs[i]), int(ys[i])]


# --------------------------------------------------------------------- negative points


def l1_distance_to_mask(mask: np.ndarray) -> np.ndarray:
    """``H x W`` int array: L1 (taxicab) distance of every pixel to the nearest mask pixel.

    0 on the mask. Raises ``ValueError`` for an empty mask (no distance is defined).
    """
    m = _as_bool_mask(mask)
    if not m.any():
        raise ValueError("L1 distance to an empty mask is undefined")
    return ndimage.distance_transform_cdt(~m, metric="taxicab").astype(np.int64)


def negative_points(
    mask: np.ndarray,
    k: int,
    max_dist: float,
    rng: np.random.Generator,
    avoid: np.ndarray | None = None,
) -> list[list[int]]:
    """Up to ``k`` distinct points ``[x, y]`` near but outside the target mask.

    mask: ``H x W`` target. A pixel qualifies when its L1 (taxicab) distance ``d`` to
    the nearest mask pixel satisfies ``0 < d <= max_dist`` (VideoSeg-R1's
    negative-point reward: minimum L1 distance to the GT masks, tau_neg = 40 px) and,
    when ``avoid`` (``H x W``, e.g. the union of all targets of the expression) is
    given, it is also outside ``avoid``. Points are drawn uniformly without
    replacement from the qualifying pixels with ``rng``; fewer than ``k`` (possibly
    none) are returned when fewer pixels qualify (e.g. an all-foreground image or an
    empty mask). Since the Euclidean distance never exceeds the L1 distance, these
    points also satisfy a Euclidean version of the band.
    """
    m = _as_bool_mask(mask)
    if k <= 0 or not m.any():
        return []
    d = l1_distance_to_mask(m)
    ok = (d > 0) & (d <= max_dist)
    if avoid is not None:
        ok &= ~_as_bool_mask(avoid, "avoid")
    ys, xs = np.nonzero(ok)
    if ys.size == 0:
        return []
    pick = rng.choice(ys.size, size=min(k, ys.size), replace=False)
    return [[int(xs[i]), int(ys[i])] for i in pick]


# ------------------------------------------------------------------------- keyframes


def frame_areas(masks: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Foreground pixel count per frame. masks: ``T x H x W`` -> ``T`` int64."""
    arr = np.asarray(masks)
    if arr.ndim != 3:
        raise ValueError(f"masks must be T x H x W, got shape {arr.shape}")
    return arr.reshape(arr.shape[0], -1).astype(bool).sum(axis=1).astype(np.int64)


def keyframe_index(masks: np.ndarray | Sequence[np.ndarray]) -> int:
    """Index of the frame with the largest target area (first such frame on ties).

    masks: ``T x H x W`` (T >= 1). An all-empty stack gives 0.
    """
    areas = frame_areas(masks)
    if areas.size == 0:
        raise ValueError("keyframe_index needs at least one frame")
    return int(np.argmax(areas))


def top_k_frames(areas: Sequence[int] | np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` largest areas with area > 0, largest first (earlier frame first on ties)."""
    a = np.asarray(areas, dtype=np.int64)
    order = np.lexsort((np.arange(a.size), -a))
    return [int(i) for i in order[: max(k, 0)] if a[i] > 0]


# -------------------------------------------------------------------------- resizing


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    if len(size) != 2 or int(size[0]) <= 0 or int(size[1]) <= 0:
        raise ValueError(f"{name} must be [W, H] with W, H > 0, got {list(size)}")
    return int(size[0]), int(size[1])


def scale_coord(v: float, from_len: int, to_len: int, clip: bool = True) -> int:
    """One coordinate from an axis of length ``from_len`` to one of ``to_len``: ``int(v * f + 0.5)``.

    ``f = to_len / from_len``. With ``clip`` the result is clamped to ``[0, to_len - 1]``
    (the rule alone can reach ``to_len`` for the last pixel when downscaling by more than 2x).
    """
    out = int(v * (to_len / from_len) + 0.5)
    if clip:
        out = min(max(out, 0), to_len - 1)
    return out


def scale_box(box: Sequence[float], from_size: Sequence[int], to_size: Sequence[int], clip: bool = True) -> list[int]:
    """Box ``[x1, y1, x2, y2]`` from an image of size ``from_size`` ``[W, H]`` to ``to_size`` ``[W, H]``."""
    fw, fh = _check_size(from_size, "from_size")
    tw, th = _check_size(to_size, "to_size")
    if len(box) != 4:
        raise ValueError(f"box must have 4 coordinates, got {list(box)}")
    x1, y1, x2, y2 = box
    return [scale_coord(x1, fw, tw, clip), scale_coord(y1, fh, th, clip),
            scale_coord(x2, fw, tw, clip), scale_coord(y2, fh, th, clip)]


def scale_point(point: Sequence[float], from_size: Sequence[int], to_size: Sequence[int], clip: bool = True) -> list[int]:
    """Point ``[x, y]`` from an image of size ``from_size`` ``[W, H]`` to ``to_size`` ``[W, H]``."""
    fw, fh = _check_size(from_size, "from_size")
    tw, th = _check_size(to_size, "to_size")
    if len(point) != 2:
        raise ValueError(f"point must have 2 coordinates, got {list(point)}")
    return [scale_coord(point[0], fw, tw, clip), scale_coord(point[1], fh, th, clip)]


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize (``cv2.INTER_LINEAR``, aspect ignored). image: ``H x W x C`` -> ``size[1] x size[0] x C``."""
    w, h = _check_size(size, "size")
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x C, got shape {img.shape}")
    if img.shape[:2] == (h, w):
        return img.copy()
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask. mask: ``H x W`` -> ``size[1] x size[0]`` bool.

    Uses ``cv2.INTER_NEAREST_EXACT`` (pixel-centre aligned, like PIL's NEAREST), so
    up-scaling by an integer factor replicates each pixel exactly.
    """
    w, h = _check_size(size, "size")
    m = _as_bool_mask(mask)
    if m.shape == (h, w):
        return m.copy()
    return cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT) > 0
