"""SAM2 video predictor propagator with random weights: runs on a tiny video, shapes, empty keyframe."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sam2")

from rewards.vision.sam2_video import Sam2VideoPropagator  # noqa: E402
from tests.rewards.vision.vision_synthetic import translating_video  # noqa: E402


@pytest.fixture(scope="module")
def propagator(one_torch_thread) -> Sam2VideoPropagator:
    return Sam2VideoPropagator(image_size=64)


def test_runs_on_tiny_video(propagator):
    frames, gt = translating_video(4, 48, (2, 1), np.random.default_rng(0), radius=8)
    out = propagator.propagate(frames, 2, gt[2])
    assert out.shape == (4, 48, 48) and out.dtype == bool
    assert np.array_equal(out[2], gt[2])


def test_empty_keyframe_mask(propagator):
    frames, _ = translating_video(3, 48, (2, 1), np.random.default_rng(0), radius=8)
    out = propagator.propagate(frames, 0, np.zeros((48, 48), bool))
    assert out.shape == (3, 48, 48) and not out.any()


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Sam2VideoPropagator(checkpoint=str(tmp_path / "missing.pt"), image_size=64)
