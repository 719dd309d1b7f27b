"""BoxFillSegmenter: exact filled boxes (inclusive pixel convention), clipping, unions."""

from __future__ import annotations

import numpy as np
import pytest

from rewards.vision.base import ObjectPrompt
from rewards.vision.oracle import BoxFillSegmenter
from tests.rewards.vision.vision_synthetic import box_of

IMAGE = np.zeros((20, 30, 3), np.uint8)


def test_round_trip_of_a_rectangle_mask():
    gt = np.zeros((20, 30), bool)
    gt[3:9, 11:25] = True
    (mask,) = BoxFillSegmenter().segment(IMAGE, [[ObjectPrompt(box=box_of(gt))]])
    assert np.array_equal(mask, gt)


def test_inclusive_box_area_and_half_up_rounding():
    seg = BoxFillSegmenter()
    (a, b) = seg.segment(IMAGE, [[ObjectPrompt(box=(2, 3, 5, 4))], [ObjectPrompt(box=(1.5, 2.49, 2.5, 2.5))]])
    assert a.sum() == (5 - 2 + 1) * (4 - 3 + 1)
    assert a[3:5, 2:6].all()
    # 1.5 -> 2, 2.49 -> 2, 2.5 -> 3, 2.5 -> 3: columns 2..3, rows 2..3
    expected = np.zeros((20, 30), bool)
    expected[2:4, 2:4] = True
    assert np.array_equal(b, expected)


def test_clipping_and_union_area():
    seg = BoxFillSegmenter()
    (clipped,) = seg.segment(IMAGE, [[ObjectPrompt(box=(-5, -5, 3, 3))]])
    assert clipped.sum() == 16 and clipped[:4, :4].all()
    # two overlapping boxes: 5x5 + 5x5 - 2x2 overlap (inclusion-exclusion by hand)
    (union,) = seg.segment(IMAGE, [[ObjectPrompt(box=(0, 0, 4, 4)), ObjectPrompt(box=(3, 3, 7, 7))]])
    assert union.sum() == 25 + 25 - 4


@pytest.mark.parametrize("prompt", [ObjectPrompt(), ObjectPrompt(box=(40, 40, 50, 50)), ObjectPrompt(box=(5, 5, 1, 1)),
                                    ObjectPrompt(points=((3.0, 3.0),), labels=(1,))])
def test_unusable_boxes_give_empty_masks(prompt):
    seg = BoxFillSegmenter()
    (mask,) = seg.segment(IMAGE, [[prompt]])
    assert mask.shape == (20, 30) and not mask.any()
    assert seg.stats["objects_skipped"] == 1


def test_empty_prompt_set():
    (mask,) = BoxFillSegmenter().segment(IMAGE, [[]])
    assert mask.dtype == bool and not mask.any()
