"""Seg-Zero's strict reward: its five binary terms, hand-computed."""

import pytest

from rewards import compute, max_score
from rewards.gt import GroundTruthError

GT = {"objects": [{"bbox_2d": [10, 10, 50, 50], "points": [[20, 20], [40, 40]]}]}


def _resp(body, think="reasoning"):
    return f"<think>{think}</think><answer>{body}</answer>"


def test_perfect_answer_scores_5_with_crossed_points():
    r = compute("segzero_strict", _resp('{"bbox": [10, 10, 50, 50], "points_1": [40, 40], "points_2": [20, 20]}'), GT)
    assert r == {"score": 5.0, "think_format": 1.0, "answer_format": 1.0, "iou": 1.0, "box_l1": 1.0, "points": 1.0}
    assert max_score("segzero_strict") == 5.0


def test_each_term():
    # IoU of [10,10,50,30] vs [10,10,50,50]: 41*21 / 41*41 = 0.512 > 0.5; L1 = 20/4 = 5 < 10.
    r = compute("segzero_strict", _resp('{"bbox": [10, 10, 50, 30], "points_1": [20, 20], "points_2": [45, 25]}'), GT)
    assert (r["iou"], r["box_l1"]) == (1.0, 1.0)
    # points: distances (0 + |(45,25)-(40,40)| = 15.81) / 2 < 100, both inside -> 1
    assert r["points"] == 1.0
    # Box L1 = 40/4 = 10, not < 10; IoU 41*41/(41*81) = 0.506 > 0.5.
    r = compute("segzero_strict", _resp('{"bbox": [10, 10, 50, 90], "points_1": [20, 20], "points_2": [45, 25]}'), GT)
    assert (r["iou"], r["box_l1"]) == (1.0, 0.0)


def test_points_truncated_to_int_before_the_box_check():
    # 50.9 -> 50 lies on the box edge (inclusive): counts; 51 does not.
    inside = '{"bbox": [10, 10, 50, 50], "points_1": [50.9, 20], "points_2": [40, 40]}'
    outside = '{"bbox": [10, 10, 50, 50], "points_1": [51, 20], "points_2": [40, 40]}'
    assert compute("segzero_strict", _resp(inside), GT)["points"] == 1.0
    assert compute("segzero_strict", _resp(outside), GT)["points"] == 0.0


def test_points_far_from_gt():
    far = '{"bbox": [0, 0, 500, 500], "points_1": [300, 300], "points_2": [400, 400]}'
    assert compute("segzero_strict", _resp(far), GT)["points"] == 0.0


def test_format_needs_all_keys_and_first_object_anywhere_is_used():
    missing = _resp('{"bbox": [10, 10, 50, 50], "points_1": [20, 20]}')
    r = compute("segzero_strict", missing, GT)
    assert r["answer_format"] == 0.0 and r["iou"] == 1.0
    # The reference takes the first {...} of the whole response, even inside <think>.
    decoy = _resp('{"bbox": [10, 10, 50, 50], "points_1": [20, 20], "points_2": [40, 40]}', think='{"bbox": [0, 0, 1, 1]}')
    r = compute("segzero_strict", decoy, GT)
    assert r["answer_format"] == 0.0 and r["iou"] == 0.0


def test_point_2d_fallback_and_bad_ground_truth():
    gt = {"objects": [{"bbox_2d": [10, 10, 50, 50], "point_2d": [30, 30]}]}
    body = '{"bbox": [10, 10, 50, 50], "points_1": [30, 30], "points_2": [30, 30]}'
    assert compute("segzero_strict", _resp(body), gt)["points"] == 1.0
    with pytest.raises(GroundTruthError, match="objects"):
        compute("segzero_strict", _resp(body), {"objects": []})
