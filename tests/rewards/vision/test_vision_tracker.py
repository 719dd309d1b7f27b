"""The CPU default propagator as a tracker (flow + colour refinement, rewards.vision.tracking).

Scenes are drawn here with exactly known masks: saturated shapes with a dark outline over a
noisy colour ramp (the look of the project's synthetic videos, but independent of the
generator), plus one check on the generator's default data set through the real readers.
Expectations come from the task (GT keyframe mask in, J of the other frames out), not from
the tracker's own output.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from data.config import SyntheticConfig
from data.readers import open_dataset
from data.synthetic import generate_synthetic_dataset
from rewards.vision.factory import build_propagator, default_propagator
from rewards.vision.flow import FlowPropagator
from rewards.vision.tracking import TrackerParams
from rl.eval.metrics import db_iou
from tests.rewards.vision.vision_synthetic import iou, ramp_background

SIZE = 96
RED, BLUE = (230, 25, 25), (30, 60, 240)


def draw(frame: np.ndarray, kind: str, centre: tuple[float, float], radius: int, colour) -> np.ndarray:
    """Draw a filled shape with a one-pixel dark outline in place; return its ``H x W`` bool mask."""
    canvas = np.zeros(frame.shape[:2], np.uint8)
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    if kind == "disc":
        cv2.circle(canvas, (cx, cy), radius, 1, -1)
    else:
        cv2.rectangle(canvas, (cx - radius, cy - radius), (cx + radius, cy + radius), 1, -1)
    mask = canvas.astype(bool)
    frame[mask] = colour
    frame[mask & ~cv2.erode(canvas, np.ones((3, 3), np.uint8)).astype(bool)] = (15, 15, 15)
    return mask


def scene(num_frames: int, objects, size: int = SIZE, seed: int = 0):
    """Frames ``T x S x S x 3`` and the visible masks ``N x T x S x S`` of ``objects``.

    ``objects``: ``(kind, (x0, y0), (vx, vy), radius, colour)`` drawn back to front (later ones occlude).
    """
    rng = np.random.default_rng(seed)
    frames, masks = [], []
    for t in range(num_frames):
        frame = ramp_background(size, size, rng, noise=6.0)
        visible = []
        for kind, (x0, y0), (vx, vy), radius, colour in objects:
            drawn = draw(frame, kind, (x0 + t * vx, y0 + t * vy), radius, colour)
            visible = [v & ~drawn for v in visible] + [drawn]
        frames.append(frame)
        masks.append(visible)
    return np.stack(frames), np.stack([np.stack(m) for m in masks], axis=1)


@pytest.fixture()
def tracker() -> FlowPropagator:
    return FlowPropagator()


def test_default_propagator_is_the_tracker():
    prop = default_propagator()
    assert isinstance(prop, FlowPropagator) and prop.refine
    assert build_propagator("flow").refine


@pytest.mark.parametrize("keyframe", [0, 4, 8])
def test_fast_uniform_square_is_tracked_in_both_directions(tracker, keyframe):
    # 6 px / frame right and 2 down: plain flow warping leaves a trail behind such a textureless shape
    frames, masks = scene(9, [("square", (20, 30), (6, 2), 9, RED)], seed=keyframe)
    gt = masks[0]
    out = tracker.propagate(frames, keyframe, gt[keyframe])
    assert out.shape == gt.shape and out.dtype == bool
    assert np.array_equal(out[keyframe], gt[keyframe])
    scores = [iou(out[t], gt[t]) for t in range(len(gt))]
    assert min(scores) > 0.85, np.round(scores, 2)


def test_object_leaving_the_frame_gives_empty_masks_afterwards(tracker):
    # a disc of radius 10 at x = 50 + 11 t leaves through the right border (96 px): its left edge
    # x - 10 passes 95 between frames 4 and 5 (one pixel left on frame 5), nothing from frame 6 on
    frames, masks = scene(8, [("disc", (50, 48), (11, 0), 10, BLUE)])
    gt = masks[0]
    assert gt[4].sum() > 100 and [t for t in range(8) if not gt[t].any()] == [6, 7]
    out = tracker.propagate(frames, 0, gt[0])
    for t in range(5):
        assert iou(out[t], gt[t]) > 0.7, (t, iou(out[t], gt[t]))
    assert out[5].sum() <= 5 and not out[[6, 7]].any(), out.reshape(8, -1).sum(axis=1)
    # played backwards the disc enters: masks are empty before it appears
    back = tracker.propagate(frames[::-1], 7, gt[0])
    assert not back[[0, 1]].any() and back[2].sum() <= 5
    assert all(iou(back[t], gt[7 - t]) > 0.7 for t in range(3, 8))


def test_object_found_again_after_a_short_occlusion(tracker):
    # a red disc moving right passes behind a blue square (in front) and comes out on the other side
    objects = [("disc", (14, 48), (7, 0), 8, RED), ("square", (48, 48), (0, 0), 14, BLUE)]
    frames, masks = scene(10, objects)
    target = masks[0]
    hidden = [t for t in range(10) if not target[t].any()]
    assert hidden, "the scene should hide the disc completely on some frame"
    out = tracker.propagate(frames, 0, target[0])
    # while hidden, at most a few pixels (the occluder's dark outline has the disc's outline colour)
    assert all(out[t].sum() < 0.15 * target[0].sum() for t in hidden), out.reshape(10, -1).sum(axis=1)
    after = [t for t in range(max(hidden) + 1, 10) if target[t].sum() >= 0.9 * target[0].sum()]
    assert after and all(iou(out[t], target[t]) > 0.7 for t in after), [round(iou(out[t], target[t]), 2) for t in after]
    # without the occlusion memory the disc is not found again
    lost = FlowPropagator(ghost_frames=0).propagate(frames, 0, target[0])
    assert max(iou(lost[t], target[t]) for t in after) < 0.5


def test_empty_keyframe_mask_gives_empty_masks(tracker):
    frames, _ = scene(5, [("disc", (30, 30), (3, 1), 10, RED)])
    out = tracker.propagate(frames, 2, np.zeros((SIZE, SIZE), bool))
    assert out.shape == (5, SIZE, SIZE) and out.dtype == bool and not out.any()


def test_static_video_keeps_any_mask_exactly(tracker):
    frame = ramp_background(64, 64, np.random.default_rng(1))
    mask = np.zeros((64, 64), bool)
    mask[20:40, 15:45] = True        # not an object of the image: colour says nothing
    mask[25:30, 20:25] = False       # a small hole
    mask[5, 5] = True                # a one-pixel speck
    out = tracker.propagate(np.stack([frame] * 5), 2, mask)
    assert all(np.array_equal(out[t], mask) for t in range(5))


def test_large_frames_are_tracked_at_max_side_and_scaled_back():
    frames, masks = scene(6, [("square", (60, 80), (12, 4), 24, RED)], size=240)
    gt = masks[0]
    prop = FlowPropagator(max_side=120)
    out = prop.propagate(frames, 2, gt[2])
    assert out.shape == gt.shape and np.array_equal(out[2], gt[2])
    assert min(iou(out[t], gt[t]) for t in range(6)) > 0.85


def test_small_and_wide_frames_do_not_crash_the_flow():
    # OpenCV's DIS crashes on short, wide frames; the propagator falls back to Farneback there
    for shape in [(8, 8), (15, 40), (24, 200)]:
        frames = np.random.default_rng(0).integers(0, 255, (3, *shape, 3), dtype=np.uint8)
        mask = np.zeros(shape, bool)
        mask[shape[0] // 2, shape[1] // 2] = True
        for prop in (FlowPropagator(dis_preset="ultrafast"), FlowPropagator(refine=False)):
            assert prop.propagate(frames, 1, mask).shape == (3, *shape)


def test_plain_warping_is_still_available():
    frames, masks = scene(5, [("disc", (30, 40), (2, 1), 12, RED)])
    out = FlowPropagator(refine=False).propagate(frames, 2, masks[0, 2])
    assert np.array_equal(out[2], masks[0, 2]) and min(iou(out[t], masks[0, t]) for t in range(5)) > 0.7


def test_parameters_are_validated_and_overridable():
    prop = FlowPropagator(ghost_frames=0, prior_outside=5.0)
    assert prop.tracker_params.ghost_frames == 0 and prop.tracker_params.prior_outside == 5.0
    assert FlowPropagator(tracker=TrackerParams(match_radius=0.0)).tracker_params.match_radius == 0.0
    with pytest.raises(TypeError, match="nope"):
        FlowPropagator(nope=1)
    with pytest.raises(ValueError, match="colour_bins"):
        FlowPropagator(colour_bins=10)
    with pytest.raises(ValueError, match="full_ratio"):
        FlowPropagator(full_ratio=0.0)
    with pytest.raises(ValueError, match="flow"):
        FlowPropagator(flow="lucas-kanade")
    with pytest.raises(ValueError, match="dis_preset"):
        FlowPropagator(dis_preset="slow")


# ----------------------------------------------------------------- the generator's default data


def test_default_synthetic_data_single_target_gt_keyframe_mean_j_above_085(tmp_path):
    """Default SyntheticConfig (objects move at up to max_speed, occlude each other, enter and leave).

    Per single-target expression: GT mask of its largest-area frame (the oracle keyframe) in,
    J of every frame out; each distinct target is tracked once.
    """
    start = time.perf_counter()
    root = generate_synthetic_dataset(tmp_path, SyntheticConfig(num_videos=12, seed=4), "valid")
    reader = open_dataset(str(tmp_path), "synthetic", "valid")
    assert root.is_dir()
    prop = default_propagator()
    scores, seen = [], set()
    for vid in reader.video_ids():
        sample = reader[vid]
        frames = np.stack([sample.load_frame(t) for t in range(sample.num_frames)])
        for exp_id, exp in sample.expressions.items():
            if len(exp.obj_ids) != 1 or (vid, exp.obj_ids) in seen:
                continue
            seen.add((vid, exp.obj_ids))
            gt = sample.expression_masks(exp_id)
            keyframe = int(np.argmax(gt.reshape(len(gt), -1).sum(axis=1)))
            scores.append(float(np.mean(db_iou(gt, prop.propagate(frames, keyframe, gt[keyframe])))))
    elapsed = time.perf_counter() - start
    print(f"\ndefault synthetic, GT keyframe mask: {len(scores)} targets, mean J {np.mean(scores):.3f}, "
          f"worst {min(scores):.2f}, {elapsed:.1f} s")
    assert len(scores) >= 15
    assert np.mean(scores) > 0.85
