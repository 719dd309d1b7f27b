"""Slow, independent reference implementations of the boundary F-measure (for the other tests).

Written from the *definitions* with explicit per-pixel loops, sharing no code
with ``rl.eval``: boundary pixels by looking at each pixel's east / south /
south-east neighbours, matches by checking the Euclidean distance to every
boundary pixel of the other mask. The tests in this file check the reference
itself on hand-drawn cases, so the comparisons elsewhere are not circular.
"""

from __future__ import annotations

import math

import numpy as np


def slow_boundary(mask: np.ndarray) -> set[tuple[int, int]]:
    """Boundary pixels (y, x) of an ``H x W`` mask by the seg2bmap rule, one pixel at a time."""
    height, width = mask.shape
    out = set()
    for y in range(height):
        for x in range(width):
            if y < height - 1 and x < width - 1:
                neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            elif y == height - 1 and x < width - 1:
                neighbours = [(y, x + 1)]
            elif x == width - 1 and y < height - 1:
                neighbours = [(y + 1, x)]
            else:
                neighbours = []
            if any(bool(mask[ny, nx]) != bool(mask[y, x]) for ny, nx in neighbours):
                out.add((y, x))
    return out


def slow_bound_pix(height: int, width: int, bound_th: float) -> int:
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(height, width))


def slow_boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    """F of one frame: explicit distance checks between all boundary pixel pairs."""
    radius = slow_bound_pix(gt.shape[0], gt.shape[1], bound_th)
    gt_b, pred_b = slow_boundary(gt), slow_boundary(pred)

    def matched(points: set, others: set) -> int:
        return sum(
            any((py - oy) ** 2 + (px - ox) ** 2 <= radius * radius for oy, ox in others) for py, px in points
        )

    if not pred_b and gt_b:
        precision, recall = 1.0, 0.0
    elif pred_b and not gt_b:
        precision, recall = 0.0, 1.0
    elif not pred_b and not gt_b:
        precision, recall = 1.0, 1.0
    else:
        precision = matched(pred_b, gt_b) / len(pred_b)
        recall = matched(gt_b, pred_b) / len(gt_b)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# ------------------------------------------------------------ the reference itself


def test_reference_boundary_of_single_pixel_is_its_2x2_block_up_left():
    mask = np.zeros((6, 6), bool)
    mask[3, 2] = True
    assert slow_boundary(mask) == {(2, 1), (2, 2), (3, 1), (3, 2)}


def test_reference_boundary_of_rectangle_is_ring_of_2h_plus_2w_pixels():
    mask = np.zeros((10, 12), bool)
    mask[3:6, 4:9] = True          # h = 3, w = 5
    expected = {(y, x) for y in range(2, 6) for x in range(3, 9)} - {(y, x) for y in range(3, 5) for x in range(4, 8)}
    assert slow_boundary(mask) == expected
    assert len(expected) == 2 * 3 + 2 * 5


def test_reference_f_hand_cases():
    gt = np.zeros((20, 20), bool)
    gt[5, 3:9] = True                               # 1-px horizontal line
    assert slow_boundary_f(gt, gt) == 1.0
    shifted = np.roll(gt, 2, axis=0)                # 2 rows down; bound_pix = 1 at 20 x 20
    assert slow_boundary_f(gt, shifted) == 0.5      # half of each boundary within 1 px
    assert slow_boundary_f(gt, np.zeros_like(gt)) == 0.0
    assert slow_boundary_f(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
