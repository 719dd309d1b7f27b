"""Boundary F-measure: seg2bmap, tolerance, disk, hand cases, and a brute-force comparison."""

from __future__ import annotations

import numpy as np
import pytest

from rl.eval.boundary import boundary_f, boundary_tolerance_pixels, disk_footprint, seg2bmap
from tests.rl.eval.test_eval_metrics_reference import slow_boundary, slow_boundary_f


def _points(bmap: np.ndarray) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in zip(*np.nonzero(bmap))}


# ------------------------------------------------------------------- seg2bmap


def test_seg2bmap_single_pixel():
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    assert _points(seg2bmap(mask)) == {(1, 1), (1, 2), (2, 1), (2, 2)}


def test_seg2bmap_hand_drawn_L_shape():
    mask = np.array(
        [[0, 0, 0, 0, 0],
         [0, 1, 0, 0, 0],
         [0, 1, 1, 0, 0],
         [0, 0, 0, 0, 0]], dtype=np.uint8)
    # A pixel is a boundary pixel when its 2x2 block (itself, E, S, SE) is not uniform.
    expected = np.array(
        [[1, 1, 0, 0, 0],
         [1, 1, 1, 0, 0],
         [1, 1, 1, 0, 0],
         [0, 0, 0, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(seg2bmap(mask), expected)


def test_seg2bmap_mask_touching_left_border_full_height():
    mask = np.zeros((10, 10), bool)
    mask[:, :4] = True
    # Only column 3 (east neighbour differs), every row including the last; nothing on the image border.
    assert _points(seg2bmap(mask)) == {(y, 3) for y in range(10)}


def test_seg2bmap_mask_touching_right_and_bottom_borders():
    right = np.zeros((10, 10), bool)
    right[:, 7:] = True
    assert _points(seg2bmap(right)) == {(y, 6) for y in range(10)}
    bottom = np.zeros((10, 10), bool)
    bottom[7:, :] = True
    assert _points(seg2bmap(bottom)) == {(6, x) for x in range(10)}


def test_seg2bmap_full_and_empty_masks_have_no_boundary():
    assert not seg2bmap(np.ones((7, 9), bool)).any()
    assert not seg2bmap(np.zeros((7, 9), bool)).any()


def test_seg2bmap_last_row_and_column_rules():
    # Pixel in the last row: only its east neighbour counts.
    mask = np.zeros((4, 4), bool)
    mask[3, 1] = True
    assert _points(seg2bmap(mask)) == {(2, 0), (2, 1), (3, 0), (3, 1)}
    # Bottom-right pixel alone: its own pixel is never a boundary pixel.
    corner = np.zeros((4, 4), bool)
    corner[3, 3] = True
    assert _points(seg2bmap(corner)) == {(2, 2), (2, 3), (3, 2)}


def test_seg2bmap_degenerate_sizes():
    assert _points(seg2bmap(np.array([[0, 1, 1, 0]], bool))) == {(0, 0), (0, 2)}
    assert _points(seg2bmap(np.array([[0], [1], [0]], bool))) == {(0, 0), (1, 0)}
    assert not seg2bmap(np.ones((1, 1), bool)).any()


def test_seg2bmap_matches_per_pixel_reference_on_random_masks_and_stacks():
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = rng.integers(1, 12, size=2)
        mask = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        assert _points(seg2bmap(mask)) == slow_boundary(mask)
    stack = rng.random((4, 6, 7)) < 0.5
    out = seg2bmap(stack)
    for t in range(4):
        np.testing.assert_array_equal(out[t], seg2bmap(stack[t]))


# ------------------------------------------------------------ tolerance / disk


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (10, 10, 1),       # 0.113 -> 1
        (24, 32, 1),       # diagonal 40: 0.32 -> 1
        (75, 100, 1),      # diagonal exactly 125: 0.008 * 125 == 1.0 -> 1, not 2
        (76, 100, 2),      # 1.0048 -> 2
        (100, 100, 2),     # 1.131 -> 2
        (360, 480, 5),     # diagonal 600: 4.8 -> 5
        (480, 854, 8),     # 7.837 -> 8
        (720, 1280, 12),   # 11.749 -> 12
        (1080, 1920, 18),  # 17.623 -> 18
    ],
)
def test_bound_pix_follows_the_diagonal(height, width, expected):
    assert boundary_tolerance_pixels(height, width) == expected


def test_bound_pix_in_pixels_and_validation():
    assert boundary_tolerance_pixels(50, 50, bound_th=3) == 3
    assert boundary_tolerance_pixels(50, 50, bound_th=1.0) == 1
    assert boundary_tolerance_pixels(50, 50, bound_th=0.0) == 0
    with pytest.raises(ValueError, match="whole number"):
        boundary_tolerance_pixels(50, 50, bound_th=2.5)
    with pytest.raises(ValueError):
        boundary_tolerance_pixels(50, 50, bound_th=-0.1)


def test_disk_footprints_hand_drawn():
    np.testing.assert_array_equal(disk_footprint(0), [[1]])
    np.testing.assert_array_equal(disk_footprint(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    np.testing.assert_array_equal(
        disk_footprint(2),
        [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]],
    )
    np.testing.assert_array_equal(
        disk_footprint(3),
        [[0, 0, 0, 1, 0, 0, 0],
         [0, 1, 1, 1, 1, 1, 0],
         [0, 1, 1, 1, 1, 1, 0],
         [1, 1, 1, 1, 1, 1, 1],
         [0, 1, 1, 1, 1, 1, 0],
         [0, 1, 1, 1, 1, 1, 0],
         [0, 0, 0, 1, 0, 0, 0]],
    )


# ------------------------------------------------------------------ F hand cases


def test_f_empty_empty_is_one_and_empty_prediction_is_zero():
    empty = np.zeros((20, 20), bool)
    gt = empty.copy()
    gt[5:9, 5:9] = True
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(gt, empty) == 0.0      # P = 1, R = 0
    assert boundary_f(empty, gt) == 0.0      # P = 0, R = 1
    assert boundary_f(gt, gt) == 1.0


def test_f_full_frame_gt_has_no_boundary():
    # Reference quirk: a full-frame mask has no boundary, so F(full, empty) = 1.
    assert boundary_f(np.ones((10, 10), bool), np.zeros((10, 10), bool)) == 1.0


def test_f_one_pixel_objects():
    gt = np.zeros((20, 20), bool)
    gt[5, 5] = True
    near = np.zeros_like(gt)
    near[5, 6] = True          # boundary blocks 1 px apart; bound_pix = 1 at 20 x 20
    far = np.zeros_like(gt)
    far[5, 8] = True           # blocks at least 2 px apart
    assert boundary_f(gt, near) == 1.0
    assert boundary_f(gt, far) == 0.0


def test_f_thin_line_shifted():
    gt = np.zeros((20, 20), bool)
    gt[5, 3:9] = True
    assert boundary_f(gt, np.roll(gt, 1, axis=0)) == 1.0
    assert boundary_f(gt, np.roll(gt, 2, axis=0)) == 0.5   # P = R = 7/14
    assert boundary_f(gt, np.roll(gt, 4, axis=0)) == 0.0


@pytest.mark.parametrize("size, bound_pix", [((100, 100), 2), ((360, 480), 5), ((24, 32), 1)])
def test_f_shift_of_exactly_bound_pix_matches_and_one_more_does_not(size, bound_pix):
    height, width = size
    assert boundary_tolerance_pixels(height, width) == bound_pix
    gt = np.zeros(size, bool)
    gt[:, : width // 2] = True                 # boundary: one full-height column
    at = np.zeros(size, bool)
    at[:, : width // 2 + bound_pix] = True     # boundary column exactly bound_pix to the right
    beyond = np.zeros(size, bool)
    beyond[:, : width // 2 + bound_pix + 1] = True
    assert boundary_f(gt, at) == 1.0
    assert boundary_f(gt, beyond) == 0.0
    # Same vertically.
    gt_v = np.zeros(size, bool)
    gt_v[: height // 2] = True
    at_v = np.zeros(size, bool)
    at_v[: height // 2 + bound_pix] = True
    beyond_v = np.zeros(size, bool)
    beyond_v[: height // 2 + bound_pix + 1] = True
    assert boundary_f(gt_v, at_v) == 1.0
    assert boundary_f(gt_v, beyond_v) == 0.0


def test_f_diagonal_offsets_use_a_euclidean_disk():
    # bound_th = 3 px. GT pixel (20, 20) -> boundary {19,20} x {19,20}; prediction (23, 23) ->
    # {22,23} x {22,23}. Only (22,22)-(20,20) is within 3 px (sqrt 8); (22,23)-(20,20) is sqrt 13.
    # A square window would match all 4 pixels, a diamond none: the disk gives P = R = 1/4.
    gt = np.zeros((40, 40), bool)
    gt[20, 20] = True
    pred = np.zeros_like(gt)
    pred[23, 23] = True
    assert boundary_f(gt, pred, bound_th=3) == pytest.approx(0.25)
    # bound_pix 2 at 100 x 100, offset (1, 2): 3 of 4 boundary pixels within 2 px on each side.
    gt2 = np.zeros((100, 100), bool)
    gt2[50, 50] = True
    pred2 = np.zeros_like(gt2)
    pred2[51, 52] = True
    assert boundary_f(gt2, pred2) == pytest.approx(0.75)


def test_f_stack_returns_per_frame_values():
    gt = np.zeros((3, 20, 20), bool)
    gt[:, 5, 3:9] = True
    pred = np.stack([gt[0], np.roll(gt[1], 2, axis=0), np.zeros((20, 20), bool)])
    np.testing.assert_array_equal(boundary_f(gt, pred), [1.0, 0.5, 0.0])


def test_f_accepts_uint8_0_255_and_rejects_bad_shapes():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:9, 5:9] = 255
    assert boundary_f(gt, (gt > 0).astype(np.uint8)) == 1.0
    with pytest.raises(ValueError, match="differ"):
        boundary_f(gt, np.zeros((20, 21), bool))
    with pytest.raises(ValueError):
        boundary_f(np.zeros(5, bool), np.zeros(5, bool))


# --------------------------------------------------------------- brute force


def _random_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:                                  # speckle
        return rng.random((height, width)) < rng.uniform(0.05, 0.6)
    mask = np.zeros((height, width), bool)
    for _ in range(rng.integers(1, 4)):            # union of rectangles (may touch borders)
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        mask[y0 : y0 + rng.integers(1, height + 1), x0 : x0 + rng.integers(1, width + 1)] = True
    if kind == 2:
        mask ^= rng.random((height, width)) < 0.1  # rectangles with noise
    return mask


@pytest.mark.parametrize("bound_th", [0.0, 0.008, 0.1, 0.25, 2, 3])
def test_f_matches_brute_force_on_random_small_masks(bound_th):
    rng = np.random.default_rng(int(bound_th * 1000) + 7)
    for _ in range(40):
        height, width = (int(v) for v in rng.integers(1, 15, size=2))
        gt = _random_mask(rng, height, width)
        pred = _random_mask(rng, height, width) if rng.random() < 0.8 else np.roll(gt, 1, axis=1)
        assert boundary_f(gt, pred, bound_th) == pytest.approx(slow_boundary_f(gt, pred, bound_th), abs=1e-12)


def test_f_matches_brute_force_for_small_objects_in_larger_frames():
    # Objects away from the borders (exercises the bounding-box crop of the dilation).
    rng = np.random.default_rng(11)
    for _ in range(25):
        gt = np.zeros((22, 30), bool)
        pred = np.zeros_like(gt)
        y, x = (int(v) for v in rng.integers(2, 12, size=2))
        gt[y : y + 8, x : x + 10] = _random_mask(rng, 8, 10)
        dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
        pred[y + dy : y + dy + 8, x + dx : x + dx + 10] = _random_mask(rng, 8, 10)
        for bound_th in (0.008, 2, 3):
            assert boundary_f(gt, pred, bound_th) == pytest.approx(slow_boundary_f(gt, pred, bound_th), abs=1e-12)
