"""Ground-truth helpers: RLE round trips, clear errors naming the key, validation per reward."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rewards import gt as gt_mod
from rewards.gt import GroundTruthError


def test_rle_round_trip_and_union():
    rng = np.random.default_rng(0)
    a = rng.random((7, 9)) > 0.5
    b = rng.random((7, 9)) > 0.7
    ra, rb = gt_mod.encode_mask(a), gt_mod.encode_mask(b)
    assert isinstance(ra["counts"], str) and ra["size"] == [7, 9]
    np.testing.assert_array_equal(gt_mod.decode_rle(ra), a)
    np.testing.assert_array_equal(gt_mod.union_of_rles([ra, rb], "masks"), a | b)
    assert gt_mod.union_of_rles([], "masks", shape=(3, 4)).shape == (3, 4)


def test_uncompressed_rle():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2:4] = True
    # Column-major run lengths: 9 zeros, 2 ones, 2 zeros, 2 ones, 5 zeros.
    uncompressed = {"size": [4, 5], "counts": [9, 2, 2, 2, 5]}
    np.testing.assert_array_equal(gt_mod.decode_rle(uncompressed), mask)
    assert mask_utils.area(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))) == 4


@pytest.mark.parametrize(
    "rle, match",
    [({"counts": "abc"}, "masks\\[0\\]"), ({"size": [2], "counts": "x"}, "size"),
     ({"size": [4, 4], "counts": 3.5}, "masks\\[0\\]"), ("nope", "masks\\[0\\]")],
)
def test_bad_rle_names_the_key(rle, match):
    with pytest.raises(GroundTruthError, match=match):
        gt_mod.union_of_rles([rle], "masks")


def test_union_size_mismatch():
    with pytest.raises(GroundTruthError, match="masks\\[1\\]"):
        gt_mod.union_of_rles([gt_mod.encode_mask(np.ones((2, 2))), gt_mod.encode_mask(np.ones((3, 2)))], "masks")


def test_load_forms():
    assert gt_mod.load('{"answer": "A"}') == {"answer": "A"}
    assert gt_mod.load([{"bbox_2d": [0, 0, 1, 1]}]) == {"objects": [{"bbox_2d": [0, 0, 1, 1]}]}
    with pytest.raises(GroundTruthError, match="JSON"):
        gt_mod.load("{broken")
    with pytest.raises(GroundTruthError):
        gt_mod.load(42)


def test_objects_errors_name_the_key():
    with pytest.raises(GroundTruthError, match=r"objects\[1\].point_2d"):
        gt_mod.objects({"objects": [{"bbox_2d": [0, 0, 1, 1], "point_2d": [0, 0]}, {"bbox_2d": [0, 0, 1, 1]}]})
    with pytest.raises(GroundTruthError, match=r"objects\[0\].bbox_2d"):
        gt_mod.objects({"objects": [{"bbox_2d": [0, 0, "1", 1], "point_2d": [0, 0]}]})
    boxes, points = gt_mod.objects({"objects": [{"bbox_2d": [0, 0, 1, 1]}]}, need_points=False)
    assert boxes.shape == (1, 4) and np.isnan(points).all()


def test_input_size_and_difficulty():
    assert gt_mod.input_size({"input_size": [840, 560]}) == (840, 560)
    assert gt_mod.input_size({}) is None
    with pytest.raises(GroundTruthError, match="input_size"):
        gt_mod.input_size({"input_size": [840.5, 10]})
    assert gt_mod.difficulty({}, 5.0) == 5.0 and gt_mod.difficulty({"difficulty": 7}, 5.0) == 7.0
    with pytest.raises(GroundTruthError, match="difficulty"):
        gt_mod.difficulty({"difficulty": "hard"}, 5.0)


def test_validate_per_reward():
    objects = [{"bbox_2d": [0, 0, 4, 4], "point_2d": [2, 2]}]
    mask = gt_mod.encode_mask(np.ones((6, 8), bool))
    gt_mod.validate({"objects": objects}, "visionreasoner")
    gt_mod.validate({"objects": objects, "masks": [mask], "input_size": [8, 6]}, "videoseg_r1")
    gt_mod.validate({"answer": "B"}, "rcot_aks")
    gt_mod.validate({"frames": [0, 2], "frame_masks": [mask, mask], "objects": objects}, "veason_r1")
    with pytest.raises(GroundTruthError, match="input_size"):
        gt_mod.validate({"objects": objects, "masks": [mask], "input_size": [6, 8]}, "videoseg_r1")
    with pytest.raises(GroundTruthError, match="answer"):
        gt_mod.validate({}, "rcot_aks")
    with pytest.raises(GroundTruthError, match="frame_masks"):
        gt_mod.validate({"frames": [0, 2], "frame_masks": [mask], "objects": objects}, "veason_r1")
    with pytest.raises(GroundTruthError, match="unknown reward"):
        gt_mod.validate({}, "nope")
