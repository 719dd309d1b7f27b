"""The malformed-cue rule (docs/rewards.md#malformed-cues): a reversed box, a box with no pixel in the
image, a point outside the image score 0 on every term, never reach the segmenter, and are counted.

The segmenter is the real ``oracle_box`` backend (the mask of an object is its box, filled), so
every mask IoU below is computed by hand from pixel counts.
"""

import json
from collections import Counter

import numpy as np
import pytest

from rewards import compute, compute_group
from rewards.vision.base import ObjectPrompt
from rewards.vision.config import SegmenterConfig
from rewards.vision.factory import build_segmenter
from rewards.vision.prompts import box_defect, clean_prompt, point_defect
from tests.rewards.rewards_fakes import CopyPropagator, box_mask, rle, write_image

W, H = 40, 30
GT_BOX, GT_POINT = [10, 5, 19, 14], [15, 10]       # 10 x 10 = 100 px, away from the border
NO_BOX_IOU = {"base.alpha_iou": 0.0}              # accuracy = [box L1 < 10] + [point < 30 px and in its box]


def _gt(tmp_path, box, point):
    return {
        "objects": [{"bbox_2d": box, "point_2d": point}],
        "masks": [rle(box_mask((H, W), box))],
        "image_path": write_image(tmp_path / "key.png", (W, H)),
        "input_size": [W, H],
    }


def _resp(items):
    return f"<think>t</think><answer>{json.dumps(items)}</answer>"


def _oracle():
    return build_segmenter(SegmenterConfig(backend="oracle_box"))


@pytest.mark.parametrize("box, height, width, expected", [
    ((10, 10, 10, 10), 30, 40, None),                      # x1 == x2: one pixel column, not zero area
    ((10.5, 0, 10.4, 5), 30, 40, "reversed"),
    ((5, 9, 8, 3), 30, 40, "reversed"),
    ((0, 0, float("inf"), 3), 30, 40, "non_finite"),
    ((40, 0, 45, 5), 30, 40, "outside_image"),             # column 40 is past the last one (39)
    ((-3, -0.6, -0.6, 5), 30, 40, "outside_image"),        # -0.6 rounds half up to -1
    ((-3, 0, -0.5, 5), 30, 40, None),                      # -0.5 rounds half up to 0: column 0
    ((-50, -50, 500, 500), 30, 40, None),                  # partly outside: clipped, not malformed
    ((40, 0, 45, 5), None, None, None),                    # without the image size only the first two tests
])
def test_box_defect(box, height, width, expected):
    assert box_defect(box, height, width) == expected


@pytest.mark.parametrize("point, expected", [
    ((39.4, 29.4), None), ((39.5, 0), "outside_image"), ((-0.5, 0), None), ((-0.51, 0), "outside_image"),
    ((3, float("nan")), "non_finite"),
])
def test_point_defect(point, expected):
    assert point_defect(point, 30, 40) == expected


def test_clean_prompt_with_image_size_drops_clips_and_counts():
    stats = Counter()
    clean = clean_prompt(ObjectPrompt(box=(-5, 2, 60, 8), points=((45.0, 3.0), (3.0, 3.0)), labels=(1, 0)),
                         stats, height=H, width=W)
    assert clean.box == (0.0, 2.0, W - 1.0, 8.0)
    assert clean.points.tolist() == [[3.0, 3.0]] and clean.labels.tolist() == [0]
    assert stats == {"points_outside_image": 1}
    assert clean_prompt(ObjectPrompt(box=(45, 2, 60, 8)), stats, height=H, width=W).box is None
    assert clean_prompt(ObjectPrompt(box=(8, 2, 6, 8)), stats, height=H, width=W).box is None
    assert stats == {"points_outside_image": 1, "boxes_outside_image": 1, "boxes_dropped": 1}


def test_reversed_and_off_image_boxes_score_zero_mask_iou_and_are_counted(tmp_path):
    gt = _gt(tmp_path, GT_BOX, GT_POINT)
    valid = {"bbox_2d": GT_BOX, "point_2d": GT_POINT}
    reversed_far = {"bbox_2d": [30, 25, 22, 20], "point_2d": [26, 22]}    # sorted it would fill 9 x 6 px
    off_image = {"bbox_2d": [45, 2, 60, 8], "point_2d": [50, 5]}          # clipped it would be column 39, rows 2..8
    reversed_on_gt = {"bbox_2d": [19, 14, 10, 5], "point_2d": GT_POINT}   # sorted it is the GT box
    responses = [_resp([valid]), _resp([valid, reversed_far, off_image]), _resp([reversed_on_gt])]
    seg = _oracle()
    r_valid, r_mixed, r_reversed = compute_group("videoseg_r1", responses, gt, segmenter=seg, **NO_BOX_IOU)

    assert (r_valid["mask_iou"], r_valid["accuracy"], r_valid["malformed_cues"]) == (1.0, 2.0, 0.0)
    # Only the valid item is segmented: IoU 1 (sorting and clipping gave 100 / (100 + 54 + 7)).
    # The valid item matches the one GT object: accuracy 2 / max(3, 1). Malformed: 2 boxes + 1 point.
    assert r_mixed["mask_iou"] == 1.0
    assert r_mixed["accuracy"] == pytest.approx(2 / 3)
    assert r_mixed["malformed_cues"] == 3.0
    # Reversed box exactly on the GT: mask IoU 0 (was 1) and no box-L1 credit (mean |diff| 9 < 10 gave 1).
    assert (r_reversed["mask_iou"], r_reversed["accuracy"], r_reversed["malformed_cues"]) == (0.0, 0.0, 1.0)
    # The segmenter only ever saw the valid object (the same prompt in two responses: filled once).
    assert seg.stats == {"objects_filled": 1}
    # Scoring one response at a time gives the same numbers.
    assert [compute("videoseg_r1", r, gt, segmenter=_oracle(), **NO_BOX_IOU) for r in responses] == \
        [r_valid, r_mixed, r_reversed]


def test_box_entirely_off_the_image_earns_nothing(tmp_path):
    # GT on the left border; the predicted box lies just left of the image (clipped, it was
    # the 10-px column 0 inside the GT: mask IoU 0.1; box L1 = (9 + 0 + 10 + 0) / 4 < 10 and
    # the point (-5, 10), 9 px from the GT point and inside its own box, each earned 1).
    gt = _gt(tmp_path, [0, 5, 9, 14], [4, 10])
    seg = _oracle()
    r = compute("videoseg_r1", _resp([{"bbox_2d": [-9, 5, -1, 14], "point_2d": [-5, 10]}]), gt, segmenter=seg,
                **NO_BOX_IOU)
    assert (r["mask_iou"], r["accuracy"], r["malformed_cues"]) == (0.0, 0.0, 2.0)
    assert r["mask_iou_available"] == 1.0 and seg.stats == {}


def test_negative_point_outside_the_image_adds_zero(tmp_path):
    gt = _gt(tmp_path, GT_BOX, GT_POINT)
    items = [
        {"bbox_2d": GT_BOX, "point_2d": GT_POINT, "neg_point_2d": [-1, 10]},   # L1 to the mask 10 + 1 = 11, but outside
        {"bbox_2d": GT_BOX, "point_2d": GT_POINT, "neg_point_2d": [5, 10]},    # L1 5: valid
    ]
    r = compute("videoseg_r1", _resp(items), gt, segmenter=_oracle())
    assert (r["negative_point"], r["malformed_cues"]) == (0.5, 1.0)


def test_veason_reversed_and_off_image_boxes(tmp_path):
    s = 20
    big = [2, 2, 11, 11]
    masks = [box_mask((s, s), [0, 0, -1, -1]), box_mask((s, s), big), box_mask((s, s), [2, 2, 11, 6])]
    gt = {
        "frames": [0, 5, 10],
        "frame_boxes": [[], [big], [[2, 2, 11, 6]]],
        "frame_paths": [write_image(tmp_path / f"{t}.png", (s, s), seed=t) for t in range(3)],
        "frame_masks": [rle(m) for m in masks],
        "input_size": [s, s],
    }

    def score(boxes):
        resp = f'<think>t</think><answer>{json.dumps({"keyframe_timestamp": 5, "bbox_2d_list": boxes})}</answer>'
        return compute("veason_r1", resp, gt, segmenter=_oracle(), propagator=CopyPropagator())

    # The reversed GT box alone: sorted it seeded the GT mask (temporal 0.5); now nothing is
    # segmented, the empty mask agrees only with the empty GT of frame 0: temporal 1/3, as for [].
    r = score([[11, 11, 2, 2]])
    assert (r["spatial"], r["temporal"], r["malformed_cues"]) == (0.0, pytest.approx(1 / 3), 1.0)
    assert r["temporal"] == score([])["temporal"]
    # Box off the image (clipped it was the corner pixel): the same.
    r = score([[25, 25, 30, 30]])
    assert (r["spatial"], r["temporal"], r["malformed_cues"]) == (0.0, pytest.approx(1 / 3), 1.0)
    # With the valid box: it is matched (IoU 1 / max(3, 1)) and seeds the mask alone.
    r = score([big, [11, 11, 2, 2], [25, 25, 30, 30]])
    assert (r["spatial"], r["temporal"], r["malformed_cues"]) == (pytest.approx(1 / 3), pytest.approx(0.5), 2.0)
    assert np.isclose(r["temporal"], score([big])["temporal"])
