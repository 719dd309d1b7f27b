"""Validation of propagator inputs shared by every :class:`~rewards.vision.base.Propagator`."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def check_video_inputs(
    frames: Sequence[np.ndarray] | np.ndarray, keyframe: int, mask: np.ndarray
) -> tuple[np.ndarray, int, np.ndarray]:
    """Return ``(frames T x H x W x 3 uint8, keyframe, mask H x W bool)`` or raise ``ValueError``/``IndexError``.

    Errors name the offending shape, dtype or index.
    """
    if isinstance(frames, np.ndarray):
        video = frames
    else:
        shapes = {np.asarray(f).shape for f in frames}
        if len(shapes) > 1:
            raise ValueError(f"propagator frames must all have one shape, got {sorted(shapes)}")
        video = np.stack([np.asarray(f) for f in frames]) if len(frames) else np.zeros((0, 0, 0, 3), np.uint8)
    if video.ndim != 4 or video.shape[3] != 3 or video.dtype != np.uint8:
        raise ValueError(f"propagator frames must be T x H x W x 3 uint8 RGB, got shape {video.shape} dtype {video.dtype}")
    num_frames, height, width = video.shape[:3]
    if num_frames == 0:
        raise ValueError("propagator got an empty video (0 frames)")
    if not -num_frames <= int(keyframe) < num_frames:
        raise IndexError(f"propagator keyframe {keyframe} out of range for a {num_frames}-frame video")
    keyframe = int(keyframe) % num_frames
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise ValueError(f"propagator keyframe mask must be {height} x {width} (the frame size), got shape {mask.shape}")
    return np.ascontiguousarray(video), keyframe, mask.astype(bool)
