"""GrabCut segmenter: accuracy on synthetic shapes with known masks, seeds, degenerate cues, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rewards.vision.base import ObjectPrompt
from rewards.vision.grabcut import GrabCutSegmenter
from tests.rewards.vision.vision_synthetic import box_of, draw_shape, gt_prompt, inscribed_point, iou, ramp_background

SHAPES = [
    ("circle", (34, 38), 15, (60, 170, 90)),
    ("square", (80, 74), 14, (170, 60, 60)),
    ("triangle", (40, 84), 16, (200, 190, 60)),
]


def scene(seed: int, size: int = 112):
    """A ramp+noise image with three textured shapes; returns (image, [GT masks])."""
    rng = np.random.default_rng(seed)
    image = ramp_background(size, size, rng, noise=14.0)
    masks = [draw_shape(image, kind, center, s, color, rng, noise=14.0) for kind, center, s, color in SHAPES]
    return image, masks


@pytest.fixture()
def segmenter() -> GrabCutSegmenter:
    return GrabCutSegmenter()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_box_and_inscribed_point_recover_shape(segmenter, seed, index):
    image, masks = scene(seed)
    gt = masks[index]
    (mask,) = segmenter.segment(image, [[gt_prompt(gt)]])
    assert mask.shape == gt.shape and mask.dtype == bool
    assert iou(mask, gt) > 0.8


@pytest.mark.parametrize("seed", [0, 3])
def test_point_only_prompt_recovers_shape(segmenter, seed):
    image, masks = scene(seed)
    for gt in masks:
        (mask,) = segmenter.segment(image, [[ObjectPrompt(points=(inscribed_point(gt),), labels=(1,))]])
        assert iou(mask, gt) > 0.8


def test_union_of_objects(segmenter):
    image, masks = scene(4)
    prompts = [gt_prompt(m) for m in masks]
    union_gt = masks[0] | masks[1] | masks[2]
    together, first, second, third = segmenter.segment(image, [prompts, prompts[:1], prompts[1:2], prompts[2:]])
    assert iou(together, union_gt) > 0.8
    # the union is the OR of the per-object masks (GrabCut is seeded, hence deterministic)
    assert np.array_equal(together, first | second | third)


def test_group_of_prompt_sets_repeats_are_segmented_once(segmenter):
    image, masks = scene(5)
    prompt = gt_prompt(masks[0])
    out = segmenter.segment(image, [[prompt]] * 8)
    assert len(out) == 8 and all(np.array_equal(o, out[0]) for o in out)
    assert segmenter.stats["objects_segmented"] == 1


def test_empty_prompt_sets(segmenter):
    image, _ = scene(0)
    assert segmenter.segment(image, []) == []
    (mask,) = segmenter.segment(image, [[]])
    assert mask.shape == image.shape[:2] and mask.dtype == bool and not mask.any()


def test_point_seeds_are_hard_constraints(segmenter):
    image, masks = scene(6)
    gt = masks[1]
    x1, y1, x2, y2 = box_of(gt)
    neg = (int(x1) + 1, int(y1) + 1)          # a corner of the square's box: inside the box, on the shape
    pos = inscribed_point(gt)
    prompt = ObjectPrompt(box=(x1, y1, x2, y2), points=(pos, neg), labels=(1, 0))
    (mask,) = segmenter.segment(image, [[prompt]])
    ys, xs = np.mgrid[0 : gt.shape[0], 0 : gt.shape[1]]
    r = segmenter.point_radius
    assert not mask[(xs - neg[0]) ** 2 + (ys - neg[1]) ** 2 <= r * r].any()
    assert mask[(xs - pos[0]) ** 2 + (ys - pos[1]) ** 2 <= r * r].all()


def test_box_clipped_to_image(segmenter):
    rng = np.random.default_rng(7)
    image = ramp_background(96, 96, rng)
    gt = draw_shape(image, "square", (6, 50), 14, (170, 60, 60), rng)   # cut by the left border
    x1, y1, x2, y2 = box_of(gt)
    prompt = ObjectPrompt(box=(x1 - 30, y1, x2, y2), points=(inscribed_point(gt),), labels=(1,))
    (mask,) = segmenter.segment(image, [[prompt]])
    assert iou(mask, gt) > 0.8


@pytest.mark.parametrize(
    "prompt, expected_pixels, counter",
    [
        (ObjectPrompt(box=(200, 200, 300, 300)), 0, "boxes_outside_image"),
        (ObjectPrompt(box=(-40, -40, -5, -5)), 0, "boxes_outside_image"),
        (ObjectPrompt(box=(50, 50, 10, 10)), 0, "boxes_dropped"),               # reversed
        (ObjectPrompt(box=(float("nan"), 0, 5, 5)), 0, "boxes_dropped"),
        (ObjectPrompt(points=((500.0, 500.0),), labels=(1,)), 0, "points_outside_image"),
        (ObjectPrompt(points=((40.0, 40.0),), labels=(0,)), 0, "objects_skipped"),  # only a negative point
        (ObjectPrompt(box=(10, 10, 10.2, 10.3)), 1, "box_fill_fallbacks"),        # one pixel
        (ObjectPrompt(box=(10, 10, 30, 11)), 21 * 2, "box_fill_fallbacks"),       # 2 px tall
    ],
)
def test_degenerate_cues_do_not_raise(segmenter, prompt, expected_pixels, counter):
    image, _ = scene(0)
    (mask,) = segmenter.segment(image, [[prompt]])
    assert int(mask.sum()) == expected_pixels
    assert segmenter.stats[counter] >= 1


@pytest.mark.parametrize("box", [(0, 0, 111, 111), (-50, -50, 500, 500)])
def test_box_covering_whole_image_does_not_raise(segmenter, box):
    image, masks = scene(1)
    (mask,) = segmenter.segment(image, [[ObjectPrompt(box=box)]])
    assert mask.shape == (112, 112)


def test_tiny_image_does_not_raise(segmenter):
    image = np.full((4, 5, 3), 128, np.uint8)
    (mask,) = segmenter.segment(image, [[ObjectPrompt(box=(0, 0, 4, 3), points=((2.0, 2.0),), labels=(1,))]])
    assert mask.shape == (4, 5) and mask[2, 2]


@pytest.mark.parametrize(
    "image, prompts, match",
    [
        (np.zeros((8, 8), np.uint8), [[]], "H x W x 3 uint8"),
        (np.zeros((8, 8, 3), np.float32), [[]], "uint8"),
        (np.zeros((8, 8, 3), np.uint8), [[ObjectPrompt(points=((1.0, 1.0),), labels=())]], "labels"),
        (np.zeros((8, 8, 3), np.uint8), [[ObjectPrompt(points=((1.0, 1.0),), labels=(2,))]], "labels"),
    ],
)
def test_structural_errors_name_the_problem(segmenter, image, prompts, match):
    with pytest.raises(ValueError, match=match):
        segmenter.segment(image, prompts)


def test_fast_on_small_images(segmenter):
    image, masks = scene(2)
    prompt = gt_prompt(masks[0])
    segmenter.segment(image, [[prompt]])
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        segmenter.segment(image, [[prompt]])
        timings.append(time.perf_counter() - start)
    assert np.median(timings) < 0.05   # a few ms when the CPU is free
