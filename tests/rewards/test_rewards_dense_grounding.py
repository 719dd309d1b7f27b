"""Dense grounding reward: hand-computed localisation, Hungarian pairing, VisionReasoner parts unchanged."""

import math

import numpy as np
import pytest

from rewards import compute, compute_group, max_score

GT = {"objects": [{"bbox_2d": [10, 10, 40, 40], "point_2d": [25, 25]}]}


def answer(*items: tuple[list[int], list[int]]) -> str:
    body = ",".join(f'{{"bbox_2d":{list(b)},"point_2d":{list(p)}}}' for b, p in items)
    return f"<think>one object.</think><answer>[{body}]</answer>"


def test_hand_computed_localization():
    # Box [20,20,50,50] vs [10,10,40,40], +1-pixel convention: inter 21*21 = 441, union 2*961 - 441 = 1481.
    iou = 441 / 1481
    box = math.exp(-10 / 10)              # mean |box diff| = 10 px, box_scale 10
    point = math.exp(-math.hypot(10, 10) / 30)   # point distance 14.14 px, point_scale 30
    out = compute("dense_grounding", answer(([20, 20, 50, 50], [35, 35])), GT)
    assert out["localization"] == pytest.approx((iou + box + point) / 3, rel=1e-12)
    # The VisionReasoner accuracy is thresholded: IoU 0.30 fails, L1 10 is not < 10, the point passes.
    assert out["accuracy"] == 1.0
    assert out["score"] == pytest.approx(1 + 2 + 1 + 1 + 3 * out["localization"])


def test_perfect_answer_scores_the_maximum():
    out = compute("dense_grounding", answer(([10, 10, 40, 40], [25, 25])), GT)
    assert out["localization"] == 1.0
    assert out["score"] == max_score("dense_grounding") == 10.0


def test_localization_falls_as_the_answer_moves_away():
    values = [compute("dense_grounding", answer(([10 + d, 10, 40 + d, 40], [25 + d, 25])), GT)["localization"]
              for d in range(0, 80, 5)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] > 0.0   # still graded far away (no threshold)


def test_matching_is_one_to_one_and_divides_by_the_larger_count():
    gt = {"objects": [{"bbox_2d": [0, 0, 9, 9], "point_2d": [5, 5]},
                      {"bbox_2d": [50, 50, 59, 59], "point_2d": [55, 55]}]}
    both = compute("dense_grounding", answer(([50, 50, 59, 59], [55, 55]), ([0, 0, 9, 9], [5, 5])), gt)
    assert both["localization"] == 1.0                       # order of the items does not matter
    one = compute("dense_grounding", answer(([0, 0, 9, 9], [5, 5])), gt)
    assert one["localization"] == pytest.approx(0.5)          # 1 matched / max(1, 2)
    twice = compute("dense_grounding", answer(([0, 0, 9, 9], [5, 5]), ([0, 0, 9, 9], [5, 5])), gt)
    far = (0.0 + math.exp(-50 / 10) + math.exp(-math.hypot(50, 50) / 30)) / 3
    assert twice["localization"] == pytest.approx((1.0 + far) / 2)


def test_empty_and_malformed_answers():
    no_target = {"objects": []}
    assert compute("dense_grounding", "<think>none.</think><answer>[]</answer>", no_target)["localization"] == 1.0
    assert compute("dense_grounding", "<think>x.</think><answer>{}</answer>", GT)["localization"] == 0.0
    assert compute("dense_grounding", "no answer at all", GT)["localization"] == 0.0
    # A missing point: the box parts still count, the point part is 0.
    out = compute("dense_grounding", '<think>x.</think><answer>[{"bbox_2d":[10,10,40,40]}]</answer>', GT)
    assert out["localization"] == pytest.approx(2 / 3)


def test_visionreasoner_components_are_unchanged():
    responses = [answer(([12, 9, 41, 40], [26, 24])), answer(([60, 60, 90, 90], [70, 70])),
                 "<think>a. a. a.</think><answer>[1]</answer>", ""]
    dense = compute_group("dense_grounding", responses, GT)
    paper = compute_group("visionreasoner", responses, GT)
    for d, p in zip(dense, paper):
        for key in ("think_format", "answer_format", "accuracy", "non_repeat"):
            assert d[key] == p[key]
        assert d["score"] == pytest.approx(p["score"] + 3 * d["localization"])
    assert np.argmax([d["localization"] for d in dense]) == 0
