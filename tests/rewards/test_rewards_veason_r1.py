"""Veason-R1 reward: format, keyframe area ratio, spatial (continuous IoU), temporal via segmenter + propagator."""

import json

import pytest

from rewards import compute, compute_group, max_score
from rewards.gt import GroundTruthError
from tests.rewards.rewards_fakes import BoxFillSegmenter, CopyPropagator, box_mask, rle, write_image

S = 20
BIG, SMALL = [2, 2, 11, 11], [2, 2, 11, 6]         # 100 px and 50 px


@pytest.fixture()
def gt(tmp_path):
    masks = [box_mask((S, S), [0, 0, -1, -1]), box_mask((S, S), BIG), box_mask((S, S), SMALL)]
    return {
        "frames": [0, 5, 10],
        "frame_boxes": [[], [BIG], [SMALL]],
        "frame_paths": [write_image(tmp_path / f"{t}.png", (S, S), seed=t) for t in range(3)],
        "frame_masks": [rle(m) for m in masks],
        "input_size": [S, S],
    }


def _resp(ts, boxes, think="t"):
    return f'<think>{think}</think><answer>{json.dumps({"keyframe_timestamp": ts, "bbox_2d_list": boxes})}</answer>'


def _models():
    return dict(segmenter=BoxFillSegmenter(), propagator=CopyPropagator())


def test_max():
    assert max_score("veason_r1") == 5.0


def test_hand_computed_components(gt):
    # ts 5 (area 100 = max), exact box; copy-propagated mask IoUs per frame: 0 (GT empty), 1, 50/100.
    r = compute("veason_r1", _resp(5, [BIG]), gt, **_models())
    assert r == pytest.approx({"score": 4.5, "think_format": 1.0, "answer_format": 1.0, "keyframe": 1.0,
                               "spatial": 1.0, "temporal": 0.5, "keyframe_valid": 1.0, "temporal_available": 1.0,
                               "malformed_cues": 0.0})
    r = compute("veason_r1", _resp(10, [SMALL]), gt, **_models())
    assert (r["keyframe"], r["spatial"], r["temporal"]) == (0.5, 1.0, pytest.approx(0.5))
    # Continuous IoU 0.5, one extra predicted box: 0.5 / 2.
    r = compute("veason_r1", _resp(5, [SMALL, [15, 15, 19, 19]]), gt, **_models())
    assert r["spatial"] == pytest.approx(0.25)
    # Sampled frame with an empty mask and no GT box: nothing matched -> empty masks; frame 0 agrees.
    r = compute("veason_r1", _resp(0, [BIG]), gt, **_models())
    assert (r["keyframe"], r["spatial"], r["temporal"]) == (0.0, 0.0, pytest.approx(1 / 3))


def test_invalid_timestamp(gt):
    for ts in (3, "5", True, 5.5, None):
        r = compute("veason_r1", _resp(ts, [BIG]), gt, **_models())
        assert (r["keyframe"], r["spatial"], r["temporal"], r["keyframe_valid"]) == (0.0, 0.0, 0.0, 0.0)
    assert compute("veason_r1", _resp(5.0, [BIG]), gt, **_models())["keyframe"] == 1.0


def test_answer_format(gt):
    assert compute("veason_r1", _resp(5, [BIG, [1, 2, 3]]), gt, **_models())["answer_format"] == 0.5
    assert compute("veason_r1", _resp(5.0, [BIG]), gt, **_models())["answer_format"] == 0.0   # not an int
    assert compute("veason_r1", _resp(5, []), gt, **_models())["answer_format"] == 0.0
    assert compute("veason_r1", "<think>x</think><answer>[1]</answer>", gt, **_models())["answer_format"] == 0.0


def test_invalid_boxes_policy(gt):
    resp = _resp(5, [BIG, "junk"])
    r = compute("veason_r1", resp, gt, **_models())
    assert (r["spatial"], r["temporal"]) == (0.0, 0.0)
    r = compute("veason_r1", resp, gt, invalid_item_policy="unmatched", **_models())
    assert (r["spatial"], r["temporal"]) == (0.5, pytest.approx(0.5))


def test_areas_and_keyframe_boxes_fallback(gt):
    alt = {k: v for k, v in gt.items() if k not in ("frame_boxes", "frame_masks", "frame_paths")}
    alt.update(frame_areas=[0, 40, 80], objects=[{"bbox_2d": SMALL}])
    r = compute("veason_r1", _resp(5, [SMALL]), alt, **_models())
    assert (r["keyframe"], r["spatial"], r["temporal"], r["temporal_available"]) == (0.5, 1.0, 0.0, 0.0)


def test_group_batches_per_keyframe(gt):
    responses = [_resp(5, [BIG]), _resp(5, [BIG]), _resp(10, [SMALL]), _resp(3, [BIG]), "junk", _resp(0, [BIG])]
    models = _models()
    group = compute_group("veason_r1", responses, gt, **models)
    assert len(models["segmenter"].calls) == 2                 # distinct chosen keyframes with prompts: 5 and 10
    assert sorted(models["propagator"].calls) == [1, 2]       # identical (keyframe, mask) propagated once
    singles = [compute("veason_r1", r, gt, **_models()) for r in responses]
    assert group == singles


def test_bad_ground_truth(gt):
    with pytest.raises(GroundTruthError, match="frames"):
        compute("veason_r1", "x", dict(gt, frames=[0, "5", 10]))
    with pytest.raises(GroundTruthError, match="frame_boxes"):
        compute("veason_r1", "x", dict(gt, frame_boxes=[[BIG]]))
    with pytest.raises(GroundTruthError, match="frame_areas"):
        compute("veason_r1", "x", {"frames": [0], "objects": []})
