"""J, j_and_f, ReVOS R, gIoU / cIoU, keyframe area ratio, box IoU: hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from rl.eval.metrics import (
    box_iou,
    db_iou,
    giou_ciou,
    j_and_f,
    keyframe_area_ratio,
    revos_robustness,
    revos_robustness_per_frame,
)

# ----------------------------------------------------------------------------- J


def test_j_hand_cases():
    empty = np.zeros((6, 6), bool)
    gt = empty.copy()
    gt[1:3, 1:4] = True                     # 6 px
    pred = empty.copy()
    pred[2:4, 1:4] = True                   # 6 px, overlap 3
    assert db_iou(empty, empty) == 1.0
    assert db_iou(gt, empty) == 0.0
    assert db_iou(empty, gt) == 0.0
    assert db_iou(gt, gt) == 1.0
    assert db_iou(gt, pred) == pytest.approx(3 / 9)
    one = empty.copy()
    one[0, 0] = True
    assert db_iou(one, one) == 1.0


def test_j_stack_is_per_frame_and_dtype_agnostic():
    gt = np.zeros((3, 4, 4), np.uint8)
    gt[0, :2, :2] = 255                     # 4 px
    gt[1, 0, 0] = 1
    pred = np.zeros_like(gt)
    pred[0, :2, :1] = 7                     # 2 px inside
    out = db_iou(gt, pred)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, [0.5, 0.0, 1.0])


def test_j_shape_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        db_iou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError):
        db_iou(np.zeros(4), np.zeros(4))


def test_j_and_f_of_one_expression():
    gt = np.zeros((2, 20, 20), bool)
    gt[:, 5, 3:9] = True                    # thin line
    pred = gt.copy()
    pred[1] = np.roll(gt[1], 2, axis=0)     # frame 1: J = 0, F = 0.5
    j, f = j_and_f(gt, pred)
    assert j == pytest.approx((1.0 + 0.0) / 2)
    assert f == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError, match="T = 0"):
        j_and_f(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))


# ----------------------------------------------------------------------------- R


def test_robustness_hand_cases():
    gt = np.zeros((10, 10), bool)
    gt[0:2, 0:5] = True                     # 10 px: the expression's object
    other = np.zeros_like(gt)
    other[5:7, 0:5] = True                  # 10 px: another annotated object
    foreground = gt | other                 # 20 px
    pred = gt.copy()
    assert revos_robustness_per_frame(gt, pred, foreground) == 1.0
    pred[9, 0:5] = True                     # 5 false positives
    assert revos_robustness_per_frame(gt, pred, foreground) == pytest.approx(1 - 5 / 20)
    missed = np.zeros_like(gt)              # misses are not false positives
    assert revos_robustness_per_frame(gt, missed, foreground) == 1.0
    flood = np.ones_like(gt)                # 90 FP > 20 -> clipped at 0
    assert revos_robustness_per_frame(gt, flood, foreground) == 0.0


def test_robustness_no_target_and_empty_foreground():
    empty = np.zeros((8, 8), bool)
    fg = empty.copy()
    fg[0:4, 0:4] = True                     # 16 px
    pred = empty.copy()
    pred[7, 0:4] = True                     # 4 px, all FP for a no-target expression
    assert revos_robustness_per_frame(empty, pred, fg) == pytest.approx(0.75)
    assert revos_robustness_per_frame(empty, empty, empty) == 1.0   # no foreground, no FP
    assert revos_robustness_per_frame(empty, pred, empty) == 0.0    # no foreground, FP


def test_robustness_of_expression_is_frame_mean():
    gt = np.zeros((2, 8, 8), bool)
    fg = np.zeros_like(gt)
    fg[:, 0:4, 0:4] = True                  # 16 px per frame
    pred = np.zeros_like(gt)
    pred[1, 7, 0:8] = True                  # frame 1: 8 FP -> 0.5
    np.testing.assert_allclose(revos_robustness_per_frame(gt, pred, fg), [1.0, 0.5])
    assert revos_robustness(gt, pred, fg) == pytest.approx(0.75)


# ------------------------------------------------------------------ gIoU / cIoU


def test_giou_ciou_hand_case():
    gt1 = np.zeros((4, 4), bool)
    gt1[0, :] = True                        # 4 px
    pred1 = np.zeros_like(gt1)
    pred1[0, :2] = True                     # I = 2, U = 4
    gt2 = np.zeros((3, 5), bool)
    gt2[1, :2] = True                       # 2 px
    pred2 = np.zeros_like(gt2)
    pred2[1, :] = True
    pred2[0, 0] = True                      # 6 px, I = 2, U = 6
    gt3 = np.zeros((2, 2), bool)            # both empty: IoU 1, adds nothing to the sums
    giou, ciou = giou_ciou([(gt1, pred1), (gt2, pred2), (gt3, gt3.copy())])
    assert giou == pytest.approx((0.5 + 1 / 3 + 1.0) / 3)
    assert ciou == pytest.approx((2 + 2) / (4 + 6))


def test_giou_ciou_edge_cases():
    empty = np.zeros((3, 3), bool)
    assert giou_ciou([(empty, empty)]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        giou_ciou([])
    with pytest.raises(ValueError, match="shapes differ"):
        giou_ciou([(empty, np.zeros((3, 4), bool))])


# ------------------------------------------------------------------- diagnostics


def test_keyframe_area_ratio():
    assert keyframe_area_ratio(50, 200) == 0.25
    assert keyframe_area_ratio(200, 200) == 1.0
    assert keyframe_area_ratio(0, 0) == 1.0        # target absent everywhere
    np.testing.assert_allclose(keyframe_area_ratio(np.array([0, 10, 30]), np.array([40, 40, 30])), [0, 0.25, 1])
    with pytest.raises(ValueError):
        keyframe_area_ratio(60, 50)
    with pytest.raises(ValueError):
        keyframe_area_ratio(-1, 50)


def test_box_iou_plus_one_pixel_convention():
    # Areas 10 x 10 = 100 each (inclusive corners), intersection 5 x 5 = 25, union 175.
    assert box_iou([0, 0, 9, 9], [5, 5, 14, 14]) == pytest.approx(25 / 175)
    assert box_iou([3, 3, 3, 3], [3, 3, 3, 3]) == 1.0    # a single pixel has area 1
    assert box_iou([0, 0, 4, 4], [5, 5, 9, 9]) == 0.0    # touching corners, no shared pixel
    matrix = box_iou([[0, 0, 9, 9], [0, 0, 4, 9]], [[0, 0, 9, 9]])
    assert matrix.shape == (2, 1)
    np.testing.assert_allclose(matrix[:, 0], [1.0, 0.5])
    with pytest.raises(ValueError):
        box_iou([0, 0, 1], [0, 0, 1, 1])
