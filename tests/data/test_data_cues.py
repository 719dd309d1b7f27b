"""Cue invariants and hand-computed values for data.cues (boxes, points, negatives, keyframes, resizing)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from data import cues


# ----------------------------------------------------------------- mask families


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 2.0)
    return noise > np.quantile(noise, rng.uniform(0.5, 0.9))


def _ring(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = np.hypot(yy - cy, xx - cx)
    r_out = rng.uniform(4, 12)
    return (r <= r_out) & (r >= r_out - rng.uniform(1, 3))


def _line(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w), np.uint8)
    p1 = (int(rng.integers(w)), int(rng.integers(h)))
    p2 = (int(rng.integers(w)), int(rng.integers(h)))
    cv2.line(img, p1, p2, 1, thickness=1)
    return img > 0


def _multi(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(2, 5))):
        y, x = int(rng.integers(h)), int(rng.integers(w))
        m[y: y + int(rng.integers(1, 6)), x: x + int(rng.integers(1, 6))] = True
    return m


def _pixel(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[int(rng.integers(h)), int(rng.integers(w))] = True
    return m


FAMILIES = [_blob, _ring, _line, _multi, _pixel]


def _masks(seed: int, count: int = 20):
    rng = np.random.default_rng(seed)
    for family in FAMILIES:
        for _ in range(count):
            h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
            m = family(rng, h, w)
            if m.any():
                yield family.__name__, m


def _brute_inscribed_radius(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each pixel to the nearest outside pixel (image border counts as outside)."""
    h, w = mask.shape
    padded = np.pad(mask, 1)
    oy, ox = np.nonzero(~padded)
    yy, xx = np.mgrid[1:h + 1, 1:w + 1]
    d = np.sqrt((yy[..., None] - oy) ** 2 + (xx[..., None] - ox) ** 2).min(axis=-1)
    return np.where(mask, d, 0.0)


# ------------------------------------------------------------------------- boxes


def test_mask_to_box_hand_example():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    m[7, 1] = True
    assert cues.mask_to_box(m) == [1, 2, 8, 7]
    assert cues.mask_to_box(np.zeros((4, 4), bool)) is None


def test_mask_to_box_is_tight_on_random_masks():
    for name, m in _masks(0):
        x1, y1, x2, y2 = cues.mask_to_box(m)
        ys, xs = np.nonzero(m)
        assert xs.min() >= x1 and xs.max() <= x2 and ys.min() >= y1 and ys.max() <= y2, name
        # each edge touches the mask
        assert m[:, x1].any() and m[:, x2].any() and m[y1, :].any() and m[y2, :].any(), name


# ----------------------------------------------------------------- positive point


def test_inscribed_point_inside_and_maximal_on_random_masks():
    for name, m in _masks(1):
        x, y = cues.inscribed_circle_point(m)
        assert 0 <= x < m.shape[1] and 0 <= y < m.shape[0], name
        assert m[y, x], f"{name}: point {(x, y)} outside the mask"
        brute = _brute_inscribed_radius(m)
        assert brute[y, x] == pytest.approx(brute.max(), abs=1e-4), name


def test_inscribed_point_is_deterministic():
    for _, m in _masks(2, count=5):
        assert cues.inscribed_circle_point(m) == cues.inscribed_circle_point(m.copy())


def test_inscribed_point_hand_examples():
    # Rectangle rows 2..6, cols 1..9: unique centre.
    m = np.zeros((10, 12), bool)
    m[2:7, 1:10] = True
    assert cues.inscribed_circle_point(m) == [5, 4]
    # Bar rows 4..6, cols 2..24: distance 2 on the middle row for x in 3..23 -> middle x = 13.
    bar = np.zeros((10, 30), bool)
    bar[4:7, 2:25] = True
    assert cues.inscribed_circle_point(bar) == [13, 5]
    # 4x4 square: the 4 central pixels tie and are equidistant from their centroid -> smallest row, column.
    sq = np.zeros((8, 8), bool)
    sq[2:6, 2:6] = True
    assert cues.inscribed_circle_point(sq) == [3, 3]
    # Image border counts as outside: a full 5x5 image has its point in the middle.
    assert cues.inscribed_circle_point(np.ones((5, 5), bool)) == [2, 2]
    # Band along the top border (rows 0..3 of 10x10): with the border outside, rows 1-2 are deepest
    # (distance 2) for x in 1..8; the 4 pixels nearest the centroid (4.5, 1.5) tie -> (4, 1).
    top = np.zeros((10, 10), bool)
    top[:4] = True
    assert cues.inscribed_circle_point(top) == [4, 1]
    # One pixel.
    one = np.zeros((3, 4), bool)
    one[2, 3] = True
    assert cues.inscribed_circle_point(one) == [3, 2]
    assert cues.inscribed_circle_point(np.zeros((3, 3), bool)) is None


# ---------------------------------------------------------------- negative points


def _brute_l1(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return (np.abs(yy[..., None] - ys) + np.abs(xx[..., None] - xs)).min(axis=-1)


@pytest.mark.parametrize("max_dist", [1, 3, 40])
def test_negative_points_in_band_outside_mask(max_dist):
    rng = np.random.default_rng(3)
    for name, m in _masks(4, count=8):
        d = _brute_l1(m)
        candidates = int(((d > 0) & (d <= max_dist)).sum())
        pts = cues.negative_points(m, 5, max_dist, rng)
        assert len(pts) == min(5, candidates), name
        assert len({tuple(p) for p in pts}) == len(pts), f"{name}: duplicate points"
        for x, y in pts:
            assert 0 <= x < m.shape[1] and 0 <= y < m.shape[0]
            assert 0 < d[y, x] <= max_dist, f"{name}: L1 distance {d[y, x]} outside (0, {max_dist}]"


def test_negative_points_avoid_other_targets_and_edge_cases():
    m = np.zeros((20, 20), bool)
    m[5:10, 5:10] = True
    other = np.zeros_like(m)
    other[:, 10:] = True  # right half belongs to another target
    pts = cues.negative_points(m, 50, 4, np.random.default_rng(0), avoid=m | other)
    assert pts and all(x < 10 for x, _ in pts)
    # full image: nowhere outside; empty mask: no target to be near
    assert cues.negative_points(np.ones((4, 4), bool), 3, 40, np.random.default_rng(0)) == []
    assert cues.negative_points(np.zeros((4, 4), bool), 3, 40, np.random.default_rng(0)) == []
    # same seed, same points
    a = cues.negative_points(m, 3, 10, np.random.default_rng(7))
    b = cues.negative_points(m, 3, 10, np.random.default_rng(7))
    assert a == b


def test_negative_points_hand_example():
    # One pixel at (0, 0), band (0, 1]: only (1, 0) and (0, 1) qualify.
    m = np.zeros((5, 5), bool)
    m[0, 0] = True
    pts = cues.negative_points(m, 10, 1, np.random.default_rng(0))
    assert sorted(map(tuple, pts)) == [(0, 1), (1, 0)]


# ----------------------------------------------------------------------- keyframes


def test_frame_areas_and_keyframe():
    masks = np.zeros((4, 6, 6), bool)
    masks[0, :2, :2] = True     # 4
    masks[1, :3, :3] = True     # 9
    masks[2, :3, :3] = True     # 9 (tie with frame 1)
    masks[3, 0, 0] = True       # 1
    assert cues.frame_areas(masks).tolist() == [4, 9, 9, 1]
    assert cues.keyframe_index(masks) == 1
    assert cues.keyframe_index(np.zeros((3, 2, 2), bool)) == 0
    rng = np.random.default_rng(5)
    for _ in range(20):
        stack = rng.random((7, 5, 5)) > rng.random()
        areas = stack.reshape(7, -1).sum(1)
        assert cues.keyframe_index(stack) == int(np.flatnonzero(areas == areas.max())[0])


def test_top_k_frames():
    assert cues.top_k_frames([0, 5, 3, 5, 1], 3) == [1, 3, 2]
    assert cues.top_k_frames([0, 2, 0], 5) == [1]


# -------------------------------------------------------------------------- resize


def test_scale_box_hand_computed_round_trip():
    # 1280x720 -> 840x840: x * 0.65625, y * 1.16667, int(v*f + 0.5)
    # 100 -> 66.125 -> 66; 50 -> 58.83 -> 58; 1279 -> 839.84 -> 839; 719 -> 839.33 -> 839
    assert cues.scale_box([100, 50, 1279, 719], [1280, 720], [840, 840]) == [66, 58, 839, 839]
    # back: 66 -> 101.07 -> 101; 58 -> 50.21 -> 50; 839 -> 1278.98 -> 1278; 839 -> 719.64 -> 719
    assert cues.scale_box([66, 58, 839, 839], [840, 840], [1280, 720]) == [101, 50, 1278, 719]
    # 1920 wide: 1000 -> 438.0 -> 438
    assert cues.scale_point([1000, 0], [1920, 1080], [840, 840]) == [438, 0]


def test_scale_clip_at_far_edge():
    # 1919 * 840/1920 + 0.5 = 840.06 -> 840 without clipping, the last pixel 839 with it
    assert cues.scale_point([1919, 0], [1920, 1080], [840, 840], clip=False) == [840, 0]
    assert cues.scale_point([1919, 0], [1920, 1080], [840, 840]) == [839, 0]


def test_scale_rejects_bad_sizes():
    with pytest.raises(ValueError, match="from_size"):
        cues.scale_box([0, 0, 1, 1], [0, 10], [10, 10])
    with pytest.raises(ValueError, match="4 coordinates"):
        cues.scale_box([0, 0, 1], [10, 10], [10, 10])


def test_resize_mask_and_image_use_w_h_order():
    m = np.zeros((2, 3), bool)
    m[0, 0] = m[1, 2] = True
    up = cues.resize_mask(m, [6, 4])               # [W, H] -> shape (H, W) = (4, 6), exact 2x replication
    assert up.shape == (4, 6)
    assert np.array_equal(up, np.kron(m, np.ones((2, 2), bool)))
    img = np.full((5, 7, 3), 77, np.uint8)
    out = cues.resize_image(img, [11, 3])
    assert out.shape == (3, 11, 3) and out.dtype == np.uint8 and (out == 77).all()
