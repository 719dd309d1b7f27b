"""RCoT-Seg KTG (max 6) and AKS (max 3) rewards, hand-computed."""

import json

import pytest

from rewards import compute, max_score
from rewards.gt import GroundTruthError

GT = {"objects": [{"bbox_2d": [416, 7, 833, 553], "point_2d": [648, 249]}]}
ITEMS = [{"bbox_2d": [416, 7, 833, 553], "point_2d": [648, 249]},
         {"bbox_2d": [10, 100, 398, 423], "point_2d": [283, 169]}]


def test_ktg_components_and_lambdas():
    resp = f"<think>x</think><answer>{json.dumps(ITEMS)}</answer>"
    r = compute("rcot_ktg", resp, GT)
    assert r == {"score": 4.5, "format_structure": 1.0, "format_boxes": 1.0, "format_points": 1.0, "accuracy": 1.5}
    assert compute("rcot_ktg", resp, GT, lambda_f=0.5, lambda_a=3.0)["score"] == pytest.approx(0.5 * 3 + 3 * 1.5)
    assert max_score("rcot_ktg") == 6.0


def test_ktg_format_parts():
    items = [{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4], "point_2d": [1, 2]}]
    r = compute("rcot_ktg", f"<answer>{json.dumps(items)}</answer>", GT)
    assert (r["format_structure"], r["format_boxes"], r["format_points"]) == (0.0, 1.0, 0.5)


def test_ktg_accuracy_alphas():
    gt = {"objects": [{"bbox_2d": [0, 0, 9, 9], "point_2d": [5, 5]}]}
    items = [{"bbox_2d": [0, 0, 9, 4], "point_2d": [5, 2]}]            # S_iou 0, S_box 1, S_pt 1
    r = compute("rcot_ktg", f"<think>x</think><answer>{json.dumps(items)}</answer>", gt,
                alpha_box=0.5, alpha_pt=2.0, eta=0.4)
    assert r["accuracy"] == pytest.approx(1.0 + 0.5 + 2.0)


@pytest.mark.parametrize(
    "response, fmt, acc",
    [
        ("<think>frame shows it</think><answer>A</answer>", 1.0, 1.0),
        ("<think>x</think>\n<answer> A </answer>", 1.0, 1.0),
        ("<think>x</think><answer>B</answer>", 1.0, 0.0),
        ("<think>x</think><answer>A.</answer>", 0.0, 0.0),
        ("<think>x</think><answer>C</answer>", 0.0, 0.0),
        ("<answer>A</answer>", 0.0, 1.0),
        ("A", 0.0, 0.0),
    ],
)
def test_aks(response, fmt, acc):
    r = compute("rcot_aks", response, {"answer": "A"})
    assert (r["format"], r["accuracy"]) == (fmt, acc)
    assert r["score"] == pytest.approx(1.0 * fmt + 2.0 * acc)


def test_aks_max_and_bad_gt():
    assert max_score("rcot_aks") == 3.0
    with pytest.raises(GroundTruthError, match="answer"):
        compute("rcot_aks", "<answer>A</answer>", {"answer": "Z"})
