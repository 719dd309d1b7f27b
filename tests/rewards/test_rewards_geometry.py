"""Geometry against hand-computed values and brute force."""

import numpy as np
import pytest

from rewards.geometry import (
    box_iou_matrix,
    box_l1_matrix,
    l1_distance_to_mask,
    mask_iou,
    point_distance_matrix,
    points_in_boxes,
)


def test_box_iou_plus_one_convention():
    a = np.array([[0, 0, 9, 9]])          # 10 x 10 = 100 px
    b = np.array([[0, 0, 9, 4],           # 50 px inside a -> 0.5
                  [5, 5, 14, 14],         # overlap 5x5=25; union 175
                  [10, 0, 19, 9],         # touching, no shared pixel -> 0
                  [9, 0, 18, 9]])         # one shared column: 10 px; union 190
    iou = box_iou_matrix(a, b)
    assert iou.shape == (1, 4)
    np.testing.assert_allclose(iou[0], [0.5, 25 / 175, 0.0, 10 / 190])


def test_box_iou_strict_overlap_drops_single_line_intersections():
    a, b = np.array([[0, 0, 9, 9]]), np.array([[9, 0, 18, 9]])
    assert box_iou_matrix(a, b, strict_overlap=True)[0, 0] == 0.0
    assert box_iou_matrix(a, b)[0, 0] > 0


def test_box_iou_degenerate_and_nan_rows_are_zero():
    a = np.array([[10, 10, 0, 0], [0, 0, -1, -1], [np.nan, 0, 5, 5], [0, 0, 1e308, 1e308]])
    iou = box_iou_matrix(a, np.array([[0, 0, 10, 10]]))
    assert np.all(np.isfinite(iou)) and np.all((iou >= 0) & (iou <= 1))
    assert iou[:3, 0].tolist() == [0.0, 0.0, 0.0]


def test_box_iou_matches_pixel_counting():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = np.sort(rng.integers(0, 20, (2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
        b = np.sort(rng.integers(0, 20, (2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
        ma = np.zeros((20, 20), bool); ma[a[1]:a[3] + 1, a[0]:a[2] + 1] = True
        mb = np.zeros((20, 20), bool); mb[b[1]:b[3] + 1, b[0]:b[2] + 1] = True
        expected = (ma & mb).sum() / (ma | mb).sum()
        assert box_iou_matrix(a[None], b[None])[0, 0] == pytest.approx(expected)


def test_l1_and_point_distances():
    boxes_a = np.array([[0, 0, 10, 10], [1, 2, 3, 4]])
    boxes_b = np.array([[2, 2, 12, 14]])
    np.testing.assert_allclose(box_l1_matrix(boxes_a, boxes_b)[:, 0], [(2 + 2 + 2 + 4) / 4, (1 + 0 + 9 + 10) / 4])
    d = point_distance_matrix(np.array([[0, 0], [3, 4]]), np.array([[0, 0], [6, 8]]))
    np.testing.assert_allclose(d, [[0, 10], [5, 5]])


def test_points_in_own_box_inclusive():
    points = np.array([[0, 0], [10, 10], [11, 5], [5, -1], [np.nan, 1]])
    boxes = np.array([[0, 0, 10, 10]] * 5)
    assert points_in_boxes(points, boxes).tolist() == [True, True, False, False, False]


def test_mask_iou():
    a = np.zeros((4, 4), bool); b = np.zeros((4, 4), bool)
    assert mask_iou(a, b) == 1.0
    a[0, :2] = True
    assert mask_iou(a, b) == 0.0
    b[0, 1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 3)


def test_l1_distance_to_mask_brute_force():
    rng = np.random.default_rng(1)
    mask = np.zeros((15, 20), bool)
    mask[4:8, 6:11] = True
    mask[12, 2] = True
    ys, xs = np.nonzero(mask)
    points = np.concatenate([rng.uniform(-10, 30, (60, 2)), [[6, 4], [10.4, 7.4], [-3, 5]]])
    got = l1_distance_to_mask(points, mask)
    for (x, y), d in zip(points, got):
        qx, qy = np.floor(x + 0.5), np.floor(y + 0.5)
        assert d == pytest.approx(np.min(np.abs(xs - qx) + np.abs(ys - qy)))
    assert got[-3] == 0 and got[-2] == 0          # on the mask
    assert got[-1] == 3 + 6                       # (-3, 5): 3 to the border, then 6 to pixel (6, 5)


def test_l1_distance_to_empty_mask_is_inf():
    d = l1_distance_to_mask(np.array([[1, 1], [np.nan, 0]]), np.zeros((5, 5), bool))
    assert d[0] == np.inf and np.isnan(d[1])
