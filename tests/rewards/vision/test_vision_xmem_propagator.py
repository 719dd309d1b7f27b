"""XMemPropagator: VISA's bidirectional scheme, the Propagator contract, random-weight runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rewards.vision.xmem import XMemPropagator
from rewards.vision.xmem.aggregation import soft_aggregate
from rewards.vision.xmem.preprocessing import IMAGENET_MEAN, IMAGENET_STD


class FrameOrderRecorder:
    """Stand-in network: remembers which frame (by its constant red value) each pass sees and
    predicts every object's mask as its memory readout (values = pooled masks)."""

    hidden_dim = 1

    def __init__(self) -> None:
        self.passes: list[list[int]] = []

    def encode_key(self, frame, need_shrinkage=True, need_selection=True):
        red = frame[0, 0, 0, 0].item() * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        self.passes[-1].append(round(red * 255 / 10))
        pooled = F.avg_pool2d(frame, 16)
        rows, cols = torch.meshgrid(
            torch.arange(pooled.shape[-2], dtype=pooled.dtype), torch.arange(pooled.shape[-1], dtype=pooled.dtype),
            indexing="ij",
        )
        key = torch.cat([pooled, 10 * rows[None, None], 10 * cols[None, None]], dim=1)  # position-aware
        shrinkage = torch.ones_like(pooled[:, :1]) if need_shrinkage else None
        return key, shrinkage, torch.ones_like(key), pooled, None, None

    def encode_value(self, frame, image_f16, hidden, masks, is_deep_update=True):
        self.passes[-1].append("value")
        return F.avg_pool2d(masks, 16).unsqueeze(2), hidden

    def segment(self, features, readout, hidden, update_hidden=True, strip_background=True):
        prob = F.interpolate(readout[:, :, 0], scale_factor=16.0, mode="nearest").clamp(0, 1)
        logits, prob = soft_aggregate(prob, dim=1)
        return hidden, logits, prob


class NeverRun:
    def __getattr__(self, name):
        raise AssertionError(f"the network must not run ({name})")


def constant_video(num_frames: int, height: int = 32, width: int = 48) -> np.ndarray:
    """Frame t has red value 10 * t everywhere."""
    video = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    video[..., 0] = (10 * np.arange(num_frames))[:, None, None]
    return video


def square_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = True
    return mask


class RecordingPropagator(XMemPropagator):
    """Starts a new recorded pass whenever a pass starts."""

    def _track(self, video, order, masks):
        self.network.passes.append([])
        yield from super()._track(video, order, masks)


@pytest.mark.parametrize("keyframe", [0, 3, 6])
def test_passes_run_forward_then_over_the_reversed_frames(keyframe) -> None:
    recorder = FrameOrderRecorder()
    propagator = RecordingPropagator.from_network(recorder, size=-1, mem_every=100)
    video = constant_video(7)
    propagator.propagate(video, keyframe, square_mask(32, 48))
    frames_seen = [[entry for entry in one_pass if entry != "value"] for one_pass in recorder.passes]
    expected = [list(range(keyframe, 7)), list(range(keyframe, -1, -1))]
    assert frames_seen == [order for order in expected if len(order) > 1]
    # each pass starts from the keyframe mask (stored first) with fresh memory
    assert all(one_pass[:2] == [keyframe, "value"] for one_pass in recorder.passes)


def test_empty_keyframe_mask_gives_empty_masks_without_running_the_network() -> None:
    propagator = XMemPropagator.from_network(NeverRun(), size=32)
    result = propagator.propagate(constant_video(5), 2, np.zeros((32, 48), dtype=bool))
    assert result.shape == (5, 32, 48) and result.dtype == bool and not result.any()


def test_stand_in_network_carries_the_mask_through_a_static_video() -> None:
    video = np.repeat(constant_video(1), 5, axis=0)
    mask = np.zeros((32, 48), dtype=bool)
    mask[:16, 16:32] = True  # one whole 16 x 16 block, so the pooled value is exactly 1
    result = RecordingPropagator.from_network(FrameOrderRecorder(), size=-1, top_k=1).propagate(video, 2, mask)
    assert result.shape == (5, 32, 48)
    assert np.array_equal(result[2], mask)
    assert all(np.array_equal(frame_mask, mask) for frame_mask in result)


def test_propagate_validates_inputs() -> None:
    propagator = XMemPropagator.from_network(NeverRun(), size=32)
    with pytest.raises(ValueError, match="mask shape"):
        propagator.propagate(constant_video(3), 0, np.zeros((10, 10), dtype=bool))
    with pytest.raises(IndexError):
        propagator.propagate(constant_video(3), 3, np.zeros((32, 48), dtype=bool))
    with pytest.raises(ValueError, match="uint8"):
        propagator.propagate(constant_video(3).astype(np.float32), 0, np.zeros((32, 48), dtype=bool))


def test_memory_overrides_reach_the_config() -> None:
    propagator = XMemPropagator.from_network(NeverRun(), mem_every=3, top_k=10, max_mid_term_frames=6)
    config = propagator.config
    assert (config.mem_every, config.top_k, config.max_mid_term_frames) == (3, 10, 6)
    with pytest.raises(TypeError):
        XMemPropagator.from_network(NeverRun(), no_such_setting=1)


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    missing = tmp_path / "XMem.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        XMemPropagator(checkpoint=str(missing))


@pytest.fixture(scope="module")
def random_xmem_propagator() -> XMemPropagator:
    torch.manual_seed(0)
    return XMemPropagator(checkpoint=None, size=64)


def test_random_weights_bidirectional_propagation(random_xmem_propagator) -> None:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (6, 64, 96, 3), dtype=np.uint8)
    mask = square_mask(64, 96)
    result = random_xmem_propagator.propagate(video, 2, mask)
    assert result.shape == (6, 64, 96) and result.dtype == bool
    assert np.array_equal(result[2], mask)


def test_resized_and_padded_video_returns_input_resolution() -> None:
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (4, 50, 70, 3), dtype=np.uint8)  # -> 40 x 56, padded to 48 x 64
    mask = square_mask(50, 70)
    propagator = RecordingPropagator.from_network(FrameOrderRecorder(), size=40)
    result = propagator.propagate(list(video), 1, mask)
    assert result.shape == (4, 50, 70) and result.dtype == bool
    assert np.array_equal(result[1], mask)
