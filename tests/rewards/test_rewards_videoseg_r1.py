"""VideoSeg-R1 reward: mask IoU through a segmenter, negative points (L1), soft length penalty."""

import json

import numpy as np
import pytest

from rewards import compute, compute_group, max_score
from rewards.gt import GroundTruthError
from tests.rewards.rewards_fakes import BoxFillSegmenter, box_mask, rle, write_image

W, H = 40, 30
GT_BOX = [10, 5, 19, 14]                           # 10 x 10 = 100 px


@pytest.fixture()
def gt(tmp_path):
    mask = box_mask((H, W), GT_BOX)
    return {
        "objects": [{"bbox_2d": GT_BOX, "point_2d": [15, 10]}],
        "masks": [rle(mask)],
        "image_path": write_image(tmp_path / "key.png", (2 * W, 2 * H)),   # original resolution, resized
        "input_size": [W, H],
        "difficulty": 2.0,
    }


def _resp(items, think="short"):
    return f"<think>{think}</think><answer>{json.dumps(items)}</answer>"


def test_max_is_base_plus_mask_and_negative_point():
    assert max_score("videoseg_r1") == 9.0
    assert max_score("videoseg_r1", weight_mask_iou=2.0, **{"base.weight_accuracy": 0.0}) == 7.0


def test_mask_iou_through_segmenter(gt):
    seg = BoxFillSegmenter()
    full = compute("videoseg_r1", _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10]}]), gt, segmenter=seg)
    half = compute("videoseg_r1", _resp([{"bbox_2d": [10, 5, 14, 14], "point_2d": [12, 10]}]), gt, segmenter=seg)
    assert full["mask_iou"] == 1.0 and full["mask_iou_available"] == 1.0
    assert half["mask_iou"] == 0.5
    # The image reaches the segmenter at the input size.
    assert seg.calls[0][0] == (H, W, 3)


def test_prompts_are_sanitised(gt):
    seg = BoxFillSegmenter()
    items = [{"bbox_2d": [50, 40, -5, 3], "point_2d": [1e9, -1e9], "neg_point_2d": [-4, 100]}]
    r = compute("videoseg_r1", _resp(items), gt, segmenter=seg)
    (prompt,) = seg.calls[0][1][0]
    assert prompt.box == (0.0, 3.0, W - 1.0, H - 1.0)
    assert prompt.points == ((W - 1.0, 0.0), (0.0, H - 1.0)) and prompt.labels == (1, 0)
    assert r["mask_iou"] == pytest.approx(100 / (W * (H - 3)))


def test_negative_points_l1_distance(gt):
    items = [
        {"bbox_2d": GT_BOX, "point_2d": [15, 10], "neg_point_2d": [22, 10]},    # L1 = 3: valid
        {"bbox_2d": GT_BOX, "point_2d": [15, 10], "neg_point_2d": [15, 10]},    # inside: 0
        {"bbox_2d": GT_BOX, "point_2d": [15, 10], "neg_point_2d": [5, 0]},      # L1 = 5 + 5 = 10: valid
        {"bbox_2d": GT_BOX, "point_2d": [15, 10], "neg_point_2d": [39, 29]},    # L1 = 20 + 15 = 35: valid
        {"bbox_2d": GT_BOX, "point_2d": [15, 10], "neg_point_2d": "junk"},       # counted in K, scores 0
        {"bbox_2d": GT_BOX, "point_2d": [15, 10]},                              # no negative point
    ]
    r = compute("videoseg_r1", _resp(items), gt, use_default_models=False)
    assert r["negative_point"] == pytest.approx(3 / 5)
    # Euclidean distance of (39, 29) would be 25 <= 30, L1 is 35 > 30.
    assert compute("videoseg_r1", _resp(items[3:4]), gt, tau_neg=30.0, use_default_models=False)["negative_point"] == 0.0
    assert compute("videoseg_r1", _resp(items[5:]), gt, use_default_models=False)["negative_point"] == 0.0


def test_length_penalty(gt):
    resp = _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10]}], think="a b c")
    seg = BoxFillSegmenter()
    r = compute("videoseg_r1", resp, gt, segmenter=seg)                  # easy (D=2): budget 128
    assert (r["token_budget"], r["reasoning_tokens"], r["length_scale"]) == (128.0, 3.0, 1.0)
    r = compute("videoseg_r1", resp, gt, segmenter=seg, think_tokens=228)
    assert r["length_scale"] == pytest.approx(0.8)
    unscaled = r["think_format"] + r["answer_format"] + r["accuracy"] + r["non_repeat"] + r["mask_iou"] + r["negative_point"]
    assert r["score"] == pytest.approx(0.8 * unscaled)
    assert compute("videoseg_r1", resp, gt, segmenter=seg, response_length=1000)["length_scale"] == 0.0
    assert compute("videoseg_r1", resp, gt, segmenter=seg, think_tokens=1000, length_penalty=False)["length_scale"] == 1.0
    hard = dict(gt, difficulty=8.0)
    assert compute("videoseg_r1", resp, hard, segmenter=seg, think_tokens=384)["length_scale"] == 1.0
    medium = dict(gt, difficulty=None)
    assert compute("videoseg_r1", resp, medium, segmenter=seg)["token_budget"] == 256.0
    with pytest.raises(TypeError, match="think_tokens"):
        compute("videoseg_r1", resp, gt, segmenter=seg, think_tokens=-1)


def test_missing_mask_inputs_are_flagged(gt):
    resp = _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10], "neg_point_2d": [22, 10]}])
    no_masks = {k: v for k, v in gt.items() if k != "masks"}
    r = compute("videoseg_r1", resp, no_masks, segmenter=BoxFillSegmenter())
    assert (r["mask_iou"], r["mask_iou_available"], r["negative_point_available"]) == (0.0, 0.0, 0.0)
    no_image = {k: v for k, v in gt.items() if k != "image_path"}
    r = compute("videoseg_r1", resp, no_image, segmenter=BoxFillSegmenter())
    assert (r["mask_iou_available"], r["negative_point"], r["negative_point_available"]) == (0.0, 1.0, 1.0)
    r = compute("videoseg_r1", resp, gt, use_default_models=False)
    assert r["mask_iou_available"] == 0.0


def test_group_calls_segmenter_once(gt):
    responses = [
        _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10]}]),
        _resp([{"bbox_2d": [10, 5, 14, 14], "point_2d": [12, 10]}]),
        "garbage",
        _resp([]),
    ]
    seg = BoxFillSegmenter()
    group = compute_group("videoseg_r1", responses, gt, segmenter=seg)
    assert len(seg.calls) == 1 and len(seg.calls[0][1]) == 4
    assert [g["mask_iou"] for g in group] == [1.0, 0.5, 0.0, 0.0]
    singles = [compute("videoseg_r1", r, gt, segmenter=BoxFillSegmenter()) for r in responses]
    assert group == singles


def test_bad_ground_truth_masks(gt):
    wrong_size = dict(gt, masks=[rle(np.zeros((10, 10), bool))])
    with pytest.raises(GroundTruthError, match="masks"):
        compute("videoseg_r1", "x", wrong_size, use_default_models=False)
    with pytest.raises(GroundTruthError, match="masks"):
        compute("videoseg_r1", "x", dict(gt, masks=[{"size": [H, W], "counts": 5}]), use_default_models=False)
    missing = dict(gt, image_path="/nonexistent/key.png")
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        compute("videoseg_r1", _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10]}]), missing, segmenter=BoxFillSegmenter())


def test_package_default_segmenter_is_used_when_none_given(gt):
    from rewards.vision.resolve import reset_default_models

    reset_default_models()
    try:
        r = compute("videoseg_r1", _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10]}]), gt)
    finally:
        reset_default_models()
    assert r["mask_iou_available"] == 1.0 and 0.0 <= r["mask_iou"] <= 1.0
