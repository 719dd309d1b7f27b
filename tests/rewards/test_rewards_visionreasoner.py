"""VisionReasoner reward: the worked example of docs/rewards.md and one hand-computed case per component."""

import json

import pytest

from rewards import compute, max_score

GT = {"objects": [{"bbox_2d": [416, 7, 833, 553], "point_2d": [648, 249]}]}
WORKED = (
    '<think>...</think><answer>[{"bbox_2d": [416,7,833,553], "point_2d": [648,249]},\n'
    '{"bbox_2d": [10,100,398,423], "point_2d": [283,169]}]</answer>'
)


def _resp(items, think="I look at the image", between=""):
    return f"<think>{think}</think>{between}<answer>{json.dumps(items)}</answer>"


def test_spec_worked_example_is_5_5():
    result = compute("visionreasoner", WORKED, GT)
    assert result == {"score": 5.5, "think_format": 1.0, "answer_format": 2.0, "accuracy": 1.5, "non_repeat": 1.0}
    assert max_score("visionreasoner") == 7.0


def test_ground_truth_as_json_string_or_bare_list():
    assert compute("visionreasoner", WORKED, json.dumps(GT["objects"]))["score"] == 5.5


def test_think_format_component():
    items = GT["objects"]
    assert compute("visionreasoner", _resp(items), GT)["think_format"] == 1.0
    assert compute("visionreasoner", _resp(items, between="oops"), GT)["think_format"] == 0.0
    assert compute("visionreasoner", f"<answer>{json.dumps(items)}</answer>", GT)["think_format"] == 0.0


def test_answer_format_component():
    items = [{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}, {"bbox_2d": [1, 2, 3]}, {"point_2d": [1, 2]}, 7]
    # (2 + 0 + 1 + 0) / 4
    assert compute("visionreasoner", _resp(items), GT)["answer_format"] == 0.75
    assert compute("visionreasoner", "<think>a</think><answer>[1, 2</answer>", GT)["answer_format"] == 0.0


def test_accuracy_component_hand_computed():
    gt = {"objects": [{"bbox_2d": [0, 0, 9, 9], "point_2d": [5, 5]}]}
    # IoU = 50/100 (not > 0.5): 0; L1 = 5/4 < 10: 1; point 3 px away, inside own box: 1.
    r = compute("visionreasoner", _resp([{"bbox_2d": [0, 0, 9, 4], "point_2d": [5, 2]}]), gt)
    assert r["accuracy"] == 2.0
    # Point outside its own predicted box loses the point term.
    r = compute("visionreasoner", _resp([{"bbox_2d": [0, 0, 9, 4], "point_2d": [5, 6]}]), gt)
    assert r["accuracy"] == 1.0


def test_accuracy_invalid_item_policy():
    items = GT["objects"] + [{"bbox_2d": "junk", "point_2d": [1, 1]}]
    assert compute("visionreasoner", _resp(items), GT)["accuracy"] == 0.0        # reference: whole term 0
    assert compute("visionreasoner", _resp(items), GT, invalid_item_policy="unmatched")["accuracy"] == 1.5


def test_accuracy_lists_are_capped():
    items = [{"bbox_2d": [0, 0, 1, 1], "point_2d": [0, 0]}] * 5 + GT["objects"]
    assert compute("visionreasoner", _resp(items), GT)["accuracy"] == 0.5        # 3 / 6
    assert compute("visionreasoner", _resp(items), GT, max_objects=2)["accuracy"] == 0.0
    assert compute("visionreasoner", _resp(items[4:]), GT, max_objects=2)["accuracy"] == 1.5


def test_non_repeat_component():
    # The whole response is split on '.', so the first piece carries "<think>".
    twice = "Look. The dog runs. The dog runs. It is brown. It is brown."
    once = "Look. The dog runs. The dog runs. It is brown."
    assert compute("visionreasoner", _resp(GT["objects"], think=once), GT)["non_repeat"] == 1.0
    assert compute("visionreasoner", _resp(GT["objects"], think=twice), GT)["non_repeat"] == 0.0


def test_weights_scale_components():
    r = compute("visionreasoner", WORKED, GT, weight_accuracy=2.0, weight_non_repeat=0.0)
    assert r["score"] == pytest.approx(1 + 2 + 2 * 1.5)
    assert max_score("visionreasoner", weight_accuracy=2.0, alpha_pt=0.0) == 1 + 2 + 2 * 2 + 1
