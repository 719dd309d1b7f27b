"""VideoSeg-R1 reward: mask IoU through a segmenter, negative points (L1), soft length penalty (Eq. 5-8)."""

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


def test_max_is_base_without_box_iou_plus_mask_and_negative_point():
    # think 1 + answer format 2 + accuracy (box L1 + point) 2 + non-repeat 1 + mask IoU 1 + negative point 1.
    assert max_score("videoseg_r1") == 8.0
    assert max_score("videoseg_r1", **{"base.alpha_iou": 1.0}) == 9.0          # box IoU kept: accuracy 0..3
    assert max_score("videoseg_r1", length_scale_negative_point=True) == 8.0   # scaling does not move the max
    assert max_score("videoseg_r1", weight_mask_iou=2.0, **{"base.weight_accuracy": 0.0}) == 7.0


# One object, over budget by 100 tokens (D = 2: easy, budget 128; 228 think tokens -> s = 1 - 0.002 * 100 = 0.8).
# Box [10,5,16,14] vs GT [10,5,19,14]: IoU 70/100 = 0.7 > 0.5, box L1 = 3/4 < 10; point [12,10] in its box and
# 3 px from the GT point; mask (box fill) IoU 0.7; negative point [22,10] at L1 3 from the mask: 1/1.
OVER_BUDGET_ITEM = {"bbox_2d": [10, 5, 16, 14], "point_2d": [12, 10], "neg_point_2d": [22, 10]}


@pytest.mark.parametrize("overrides, accuracy, expected", [
    # Paper (defaults): 0.8 * (1 + 2 + 2 + 1 + 0.7) + 1 = 5.36 + 1.
    ({}, 2.0, 6.36),
    # Box IoU kept next to the mask IoU: 0.8 * (1 + 2 + 3 + 1 + 0.7) + 1.
    ({"base.alpha_iou": 1.0}, 3.0, 7.16),
    # Negative point scaled too: 0.8 * (1 + 2 + 2 + 1 + 0.7 + 1).
    ({"length_scale_negative_point": True}, 2.0, 6.16),
    # Both switches (the earlier behaviour): 0.8 * (1 + 2 + 3 + 1 + 0.7 + 1).
    ({"base.alpha_iou": 1.0, "length_scale_negative_point": True}, 3.0, 6.96),
])
def test_hand_computed_total(gt, overrides, accuracy, expected):
    r = compute("videoseg_r1", _resp([OVER_BUDGET_ITEM], think="a b c"), gt, segmenter=BoxFillSegmenter(),
                think_tokens=228, **overrides)
    assert (r["think_format"], r["answer_format"], r["non_repeat"]) == (1.0, 2.0, 1.0)
    assert r["accuracy"] == accuracy
    assert r["mask_iou"] == pytest.approx(0.7) and r["negative_point"] == 1.0
    assert r["length_scale"] == pytest.approx(0.8)
    assert r["score"] == pytest.approx(expected)


def test_negative_point_survives_a_zero_length_factor(gt):
    """Far over budget (s = 0): only the unscaled negative-point term is left, unless it is scaled too."""
    resp = _resp([OVER_BUDGET_ITEM])
    r = compute("videoseg_r1", resp, gt, segmenter=BoxFillSegmenter(), response_length=1000, weight_negative_point=1.5)
    assert (r["length_scale"], r["negative_point"], r["score"]) == (0.0, 1.0, 1.5)
    r = compute("videoseg_r1", resp, gt, segmenter=BoxFillSegmenter(), response_length=1000,
                length_scale_negative_point=True)
    assert r["score"] == 0.0


def test_recipe_defaults_and_switches_from_the_run_config(gt):
    """The videoseg_r1 recipe scores with the paper's version; two config keys give the earlier one."""
    from rewards import build_params
    from rl.config import load_config

    resp, seg = _resp([OVER_BUDGET_ITEM], think="a b c"), BoxFillSegmenter()
    paper = build_params("videoseg_r1", load_config(["recipe=videoseg_r1"]).reward.params.videoseg_r1)
    assert (paper.base.alpha_iou, paper.length_scale_negative_point, max_score("videoseg_r1", paper)) == (0.0, False, 8.0)
    assert compute("videoseg_r1", resp, gt, params=paper, segmenter=seg, think_tokens=228)["score"] == pytest.approx(6.36)
    earlier = load_config(["recipe=videoseg_r1", "reward.params.videoseg_r1.base.alpha_iou=1",
                           "reward.params.videoseg_r1.length_scale_negative_point=true"]).reward.params.videoseg_r1
    assert max_score("videoseg_r1", earlier) == 9.0
    assert compute("videoseg_r1", resp, gt, params=earlier, segmenter=seg, think_tokens=228)["score"] == pytest.approx(6.96)


def test_mask_iou_through_segmenter(gt):
    seg = BoxFillSegmenter()
    full = compute("videoseg_r1", _resp([{"bbox_2d": GT_BOX, "point_2d": [15, 10]}]), gt, segmenter=seg)
    half = compute("videoseg_r1", _resp([{"bbox_2d": [10, 5, 14, 14], "point_2d": [12, 10]}]), gt, segmenter=seg)
    assert full["mask_iou"] == 1.0 and full["mask_iou_available"] == 1.0
    assert half["mask_iou"] == 0.5
    # The image reaches the segmenter at the input size.
    assert seg.calls[0][0] == (H, W, 3)


def test_prompts_are_clipped_and_malformed_cues_left_out(gt):
    seg = BoxFillSegmenter()
    # Box partly outside: clipped; point outside the image and NaN-free negative point: the
    # point is malformed (left out, counted), the negative point is kept.
    items = [{"bbox_2d": [-5, 3, 50, 40], "point_2d": [1e9, -1e9], "neg_point_2d": [2, 25]}]
    r = compute("videoseg_r1", _resp(items), gt, segmenter=seg)
    (prompt,) = seg.calls[0][1][0]
    assert prompt.box == (0.0, 3.0, W - 1.0, H - 1.0)
    assert prompt.points == ((2.0, 25.0),) and prompt.labels == (0,)
    assert r["mask_iou"] == pytest.approx(100 / (W * (H - 3)))
    assert r["malformed_cues"] == 1.0
    # A reversed box: the item is not prompted at all (its point neither), so no segment call.
    seg = BoxFillSegmenter()
    items = [{"bbox_2d": [50, 40, -5, 3], "point_2d": [15, 10], "neg_point_2d": [-4, 100]}]
    r = compute("videoseg_r1", _resp(items), gt, segmenter=seg)
    assert seg.calls == [] and r["mask_iou"] == 0.0 and r["malformed_cues"] == 2.0


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
    scaled = r["think_format"] + r["answer_format"] + r["accuracy"] + r["non_repeat"] + r["mask_iou"]
    assert r["score"] == pytest.approx(0.8 * scaled + r["negative_point"])
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
