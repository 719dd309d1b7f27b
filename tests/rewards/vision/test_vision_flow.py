"""Optical-flow propagator: tracks a translating textured disc both ways from the keyframe.

Both modes of :class:`FlowPropagator`: the default tracker (flow + colour refinement, more
in ``test_vision_tracker.py``) and the plain flow warping (``refine=False``).
"""

from __future__ import annotations

import numpy as np
import pytest

from rewards.vision.flow import FlowPropagator
from tests.rewards.vision.vision_synthetic import iou, ramp_background, translating_video

NUM_FRAMES = 6


@pytest.fixture(params=[True, False], ids=["tracker", "plain-warp"])
def propagator(request) -> FlowPropagator:
    return FlowPropagator(refine=request.param)


@pytest.mark.parametrize("step", [(3, 2), (4, 0), (0, -3)])
@pytest.mark.parametrize("keyframe", [0, NUM_FRAMES // 2, NUM_FRAMES - 1])
def test_tracks_translating_disc_in_both_directions(propagator, step, keyframe):
    frames, gt = translating_video(NUM_FRAMES, 96, step, np.random.default_rng(10 * abs(step[0]) + abs(step[1]) + keyframe))
    out = propagator.propagate(frames, keyframe, gt[keyframe])
    assert out.shape == gt.shape and out.dtype == bool
    assert np.array_equal(out[keyframe], gt[keyframe])
    for t in range(NUM_FRAMES):
        assert iou(out[t], gt[t]) > 0.7, (t, iou(out[t], gt[t]))


def test_frames_as_a_list(propagator):
    frames, gt = translating_video(4, 64, (2, 1), np.random.default_rng(0))
    assert np.array_equal(propagator.propagate(list(frames), 1, gt[1]), propagator.propagate(frames, 1, gt[1]))


def test_static_video_keeps_the_mask():
    frame = ramp_background(64, 64, np.random.default_rng(1))
    frames = np.stack([frame] * 5)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 15:45] = True
    # the tracker keeps a photometrically exact warp's labels: the identity
    out = FlowPropagator().propagate(frames, 2, mask)
    assert all(np.array_equal(out[t], mask) for t in range(5))
    # plain warping: zero flow + no cleanup is the identity too
    out = FlowPropagator(refine=False, morph_kernel=0).propagate(frames, 2, mask)
    assert all(np.array_equal(out[t], mask) for t in range(5))
    # its default cleanup only trims the rectangle's corner pixels
    out = FlowPropagator(refine=False).propagate(frames, 2, mask)
    assert all(iou(out[t], mask) > 0.98 and not (out[t] & ~mask).any() for t in range(5))


def test_empty_keyframe_mask_gives_empty_masks(propagator):
    frames, _ = translating_video(5, 64, (2, 1), np.random.default_rng(0))
    out = propagator.propagate(frames, 2, np.zeros((64, 64), bool))
    assert out.shape == (5, 64, 64) and not out.any()


def test_single_frame_video(propagator):
    frames, gt = translating_video(1, 32, (0, 0), np.random.default_rng(0), radius=5)
    out = propagator.propagate(frames, 0, gt[0])
    assert np.array_equal(out, gt)


def test_bad_inputs_name_the_problem(propagator):
    frames, gt = translating_video(3, 32, (1, 0), np.random.default_rng(0), radius=5)
    with pytest.raises(IndexError, match="keyframe 3"):
        propagator.propagate(frames, 3, gt[0])
    with pytest.raises(ValueError, match="32 x 32"):
        propagator.propagate(frames, 0, gt[0][:, :10])
    with pytest.raises(ValueError, match="uint8"):
        propagator.propagate(frames.astype(np.float32), 0, gt[0])
