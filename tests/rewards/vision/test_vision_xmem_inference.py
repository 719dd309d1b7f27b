"""XMem inference core: memory/deep-update schedule, aggregation and pre-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from rewards.vision.xmem import XMem, XMemInferenceConfig, XMemInferenceCore
from rewards.vision.xmem.aggregation import soft_aggregate
from rewards.vision.xmem.preprocessing import (
    frame_to_tensor,
    pad_to_multiple,
    resize_image,
    resize_masks,
    resized_shape,
    unpad,
)


class ScheduleRecorder:
    """Stand-in for XMem with its inference methods' shapes; records what the core asks for.

    Keys are the 16x16-average-pooled image (3 channels), values the pooled masks (1 channel).
    """

    hidden_dim = 2

    def __init__(self) -> None:
        self.frame = -1
        self.values: list[tuple[int, bool]] = []  # (frame, is_deep_update)
        self.segments: list[tuple[int, bool]] = []  # (frame, update_hidden)

    def encode_key(self, frame, need_shrinkage=True, need_selection=True):
        self.frame += 1
        pooled = F.avg_pool2d(frame, 16)
        shrinkage = torch.ones_like(pooled[:, :1]) if need_shrinkage else None
        selection = torch.ones_like(pooled) if need_selection else None
        return pooled, shrinkage, selection, pooled, None, None

    def encode_value(self, frame, image_f16, hidden, masks, is_deep_update=True):
        self.values.append((self.frame, is_deep_update))
        value = F.avg_pool2d(masks, 16).unsqueeze(2)
        return value, hidden + 1 if is_deep_update else hidden

    def segment(self, features, readout, hidden, update_hidden=True, strip_background=True):
        self.segments.append((self.frame, update_hidden))
        prob = F.interpolate(readout[:, :, 0], scale_factor=16.0, mode="nearest").clamp(0, 1)
        logits, prob = soft_aggregate(prob, dim=1)
        return (hidden if update_hidden else None), logits, prob


def run_schedule(num_frames: int, **overrides) -> tuple[ScheduleRecorder, XMemInferenceCore]:
    recorder = ScheduleRecorder()
    core = XMemInferenceCore(recorder, XMemInferenceConfig(**overrides))
    masks = torch.zeros(1, 32, 32)
    masks[0, :16] = 1
    for index in range(num_frames):
        core.step(torch.randn(3, 32, 32), masks if index == 0 else None, end=index == num_frames - 1)
    return recorder, core


def test_memory_every_mem_every_frames_with_synchronised_deep_update() -> None:
    recorder, core = run_schedule(13, mem_every=5)
    assert recorder.values == [(0, True), (5, True), (10, True)]  # the last frame (12) is never stored
    # the decoder's hidden update is skipped where the deep update happens, and on the last frame
    assert recorder.segments == [(t, t not in (5, 10, 12)) for t in range(1, 13)]
    assert core.memory.working_frames == 3


def test_end_frame_is_not_stored_even_on_schedule() -> None:
    recorder, _ = run_schedule(11, mem_every=5)
    assert [frame for frame, _ in recorder.values] == [0, 5]


def test_deep_update_on_its_own_period() -> None:
    recorder, _ = run_schedule(13, mem_every=2, deep_update_every=3)
    # memory frames 0, 2, ..., 10; deep update when >= 3 frames since the last one
    assert recorder.values == [(0, True), (2, False), (4, True), (6, False), (8, True), (10, False)]
    assert all(update for frame, update in recorder.segments if frame < 12)


def test_first_frame_needs_masks() -> None:
    core = XMemInferenceCore(ScheduleRecorder(), XMemInferenceConfig())
    with pytest.raises(ValueError, match="masks"):
        core.step(torch.randn(3, 32, 32))


def test_soft_aggregate_matches_odds_formula() -> None:
    prob = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits, merged = soft_aggregate(prob, dim=0)
    p = prob.numpy()
    entries = np.concatenate([np.prod(1 - p, axis=0, keepdims=True), p]).clip(1e-7, 1 - 1e-7)
    odds = entries / (1 - entries)
    np.testing.assert_allclose(merged.numpy(), odds / odds.sum(axis=0, keepdims=True), rtol=1e-9)
    np.testing.assert_allclose(logits.numpy(), np.log(odds), rtol=1e-9)


def test_real_network_core_outputs_unpadded_distributions() -> None:
    torch.manual_seed(0)
    core = XMemInferenceCore(XMem().eval(), XMemInferenceConfig(mem_every=1))
    height, width = 40, 70  # padded to 48 x 80 inside the core
    masks = torch.zeros(2, height, width)
    masks[0, 5:20, 10:40] = 1
    masks[1, 22:35, 30:60] = 1
    first = core.step(torch.randn(3, height, width), masks)
    torch.testing.assert_close(first, soft_aggregate(masks, dim=0)[1])
    for index in range(2):
        prob = core.step(torch.randn(3, height, width), end=index == 1)
        assert prob.shape == (3, height, width)
        assert torch.isfinite(prob).all()
        torch.testing.assert_close(prob.sum(dim=0), torch.ones(height, width))
    assert core.memory.working_frames == 2


@pytest.mark.parametrize(
    "height,width,size", [(480, 854, 480), (720, 1280, 480), (50, 70, 40), (501, 333, 97), (30, 40, -1)]
)
def test_resize_matches_torchvision_resize(height, width, size) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = frame_to_tensor(frame)
    expected_pixels = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    expected = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(expected_pixels)
    if size > 0:
        expected = transforms.Resize(size, interpolation=InterpolationMode.BILINEAR)(expected)
    shape = resized_shape(height, width, size)
    assert shape == tuple(expected.shape[-2:])
    torch.testing.assert_close(resize_image(image, shape), expected, rtol=1e-5, atol=1e-5)
    masks = resize_masks(torch.from_numpy(frame[None, :, :, 0] > 128), shape)
    assert masks.shape == (1, *shape) and set(masks.unique().tolist()) <= {0.0, 1.0}


def test_pad_to_multiple_of_16_and_unpad() -> None:
    x = torch.randn(2, 3, 37, 50)
    padded, padding = pad_to_multiple(x)
    assert padded.shape[-2:] == (48, 64)
    assert (padding.top, padding.bottom, padding.left, padding.right) == (5, 6, 7, 7)
    torch.testing.assert_close(unpad(padded, padding), x)
    same, no_padding = pad_to_multiple(torch.randn(1, 32, 48))
    assert same.shape == (1, 32, 48) and unpad(same, no_padding).shape == (1, 32, 48)
