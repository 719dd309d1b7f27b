"""XMem as a :class:`~rewards.vision.base.Propagator`, run the way VISA runs it.

Only the keyframe mask is given. One pass goes forward from the keyframe to the last frame,
another over the reversed frame list from the keyframe to the first frame, each with fresh
memory. The keyframe's output is the given mask; an empty keyframe mask gives empty masks
everywhere without running the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rewards.vision.xmem.checkpoint import build_xmem
from rewards.vision.xmem.config import XMemInferenceConfig
from rewards.vision.xmem.inference import XMemInferenceCore, run_pass
from rewards.vision.xmem.network import XMem
from rewards.vision.xmem.preprocessing import frame_to_tensor, resize_image, resize_masks, resized_shape


def _as_video(frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Validate and stack frames into ``T x H x W x 3`` uint8."""
    video = np.asarray(frames)
    if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
        raise ValueError(f"frames must be T x H x W x 3 with T >= 1, got shape {video.shape}")
    if video.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got {video.dtype}")
    return video


def label_map(masks: np.ndarray) -> np.ndarray:
    """``K x H x W`` bool masks -> ``H x W`` int64 labels (0 background, k + 1 for object k;
    later objects win where masks overlap)."""
    labels = np.zeros(masks.shape[1:], dtype=np.int64)
    for index, mask in enumerate(masks):
        labels[mask] = index + 1
    return labels


class XMemPropagator:
    """Bidirectional XMem mask propagation from one keyframe.

    checkpoint: path of the released ``XMem.pth`` (loaded with ``strict=True``), or None for
    random weights (tests). size: shorter side the frames are resized to (``<= 0``: keep).
    memory_overrides: fields of :class:`XMemInferenceConfig` (e.g. ``mem_every=5``).
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        size: int = 480,
        **memory_overrides: int | bool | None,
    ) -> None:
        config = XMemInferenceConfig(**memory_overrides)
        self._setup(build_xmem(checkpoint, device), config, device, size)

    @classmethod
    def from_network(
        cls,
        network: XMem,
        device: str | torch.device = "cpu",
        size: int = 480,
        **memory_overrides: int | bool | None,
    ) -> XMemPropagator:
        """A propagator around an existing network (anything with XMem's inference methods)."""
        propagator = cls.__new__(cls)
        propagator._setup(network, XMemInferenceConfig(**memory_overrides), device, size)
        return propagator

    def _setup(self, network: XMem, config: XMemInferenceConfig, device: str | torch.device, size: int) -> None:
        self.network = network
        self.config = config
        self.device = torch.device(device)
        self.size = size

    def propagate(self, frames: Sequence[np.ndarray] | np.ndarray, keyframe: int, mask: np.ndarray) -> np.ndarray:
        """frames: ``T x H x W x 3`` uint8 RGB; mask: ``H x W`` bool on ``frames[keyframe]``.

        Returns ``T x H x W`` bool with ``result[keyframe] == mask``.
        """
        video = _as_video(frames)
        key_mask = np.asarray(mask).astype(bool)
        if key_mask.shape != video.shape[1:3]:
            raise ValueError(f"mask shape {key_mask.shape} does not match frames {video.shape[1:3]}")
        if not key_mask.any():
            self._check_keyframe(keyframe, len(video))
            return np.zeros(video.shape[:3], dtype=bool)
        return self.propagate_objects(video, keyframe, key_mask[None]) == 1

    def propagate_objects(
        self, frames: Sequence[np.ndarray] | np.ndarray, keyframe: int, masks: np.ndarray
    ) -> np.ndarray:
        """Propagate ``K`` objects (``K x H x W`` bool on the keyframe) with soft aggregation.

        Returns ``T x H x W`` int64 labels (0 background, k + 1 for object k); the keyframe's
        labels come from ``masks`` directly.
        """
        video = _as_video(frames)
        self._check_keyframe(keyframe, len(video))
        masks = np.asarray(masks).astype(bool)
        if masks.ndim != 3 or masks.shape[1:] != video.shape[1:3]:
            raise ValueError(f"masks must be K x {video.shape[1]} x {video.shape[2]}, got {masks.shape}")

        labels = np.zeros(video.shape[:3], dtype=np.int64)
        labels[keyframe] = label_map(masks)
        forward = list(range(keyframe, len(video)))
        backward = list(range(keyframe, -1, -1))
        for order in (forward, backward):
            if len(order) > 1:
                for frame_index, frame_labels in zip(order[1:], self._track(video, order, masks)):
                    labels[frame_index] = frame_labels
        return labels

    @torch.no_grad()
    def _track(self, video: np.ndarray, order: list[int], masks: np.ndarray) -> Iterator[np.ndarray]:
        """One pass over ``video[order]`` starting from ``masks`` on ``video[order[0]]``.

        Yields ``H x W`` label maps at input resolution for ``order[1:]``.
        """
        height, width = video.shape[1:3]
        shape = resized_shape(height, width, self.size)
        first_masks = resize_masks(torch.from_numpy(masks).to(self.device, torch.float32), shape)
        images = (resize_image(frame_to_tensor(video[index], self.device), shape) for index in order)
        core = XMemInferenceCore(self.network, self.config)
        passes = run_pass(core, images, first_masks, length=len(order))
        next(passes)  # the keyframe: its output is the given mask
        for prob in passes:
            prob = F.interpolate(prob[None], size=(height, width), mode="bilinear", align_corners=False)[0]
            yield prob.argmax(dim=0).cpu().numpy()

    @staticmethod
    def _check_keyframe(keyframe: int, length: int) -> None:
        if not 0 <= keyframe < length:
            raise IndexError(f"keyframe {keyframe} outside the video of {length} frames")
