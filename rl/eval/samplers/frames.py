"""Lazy access to one video's frames for the evaluation pipeline.

The MLLM questions take image *paths* (the rollout interface), so frames shown to
the model are resized (bilinear, aspect ignored: ``data.cues.resize_image``) and
written once as PNGs under a work folder; the segmenter and the propagator take
the original-resolution arrays. A frame that cannot be read, or whose size is
not the video's, raises :class:`FrameError` naming the file, so the pipeline can
skip the video and count it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from data import cues
from data.io import write_png
from data.types import VideoSample

__all__ = ["FrameError", "VideoFrames", "uniform_indices", "safe_name"]


class FrameError(ValueError):
    """A frame of a video is missing, unreadable or of the wrong size."""


def safe_name(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9._-]`` (ReVOS video ids contain ``/``)."""
    part = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip(".")
    return part or "_"


def uniform_indices(lo: int, hi: int, k: int) -> list[int]:
    """At most ``k`` sorted distinct frame indices spread evenly over ``lo..hi`` (inclusive).

    The range is cut into ``k`` equal parts and the first index of each part is taken
    (the first index is always ``lo``); ``k <= 0`` or ``k >= hi - lo + 1`` gives every index.
    Example: ``uniform_indices(0, 9, 4) == [0, 2, 5, 7]``.
    """
    if hi < lo:
        raise ValueError(f"empty frame range {lo}..{hi}")
    n = hi - lo + 1
    if k <= 0 or k >= n:
        return list(range(lo, hi + 1))
    return [lo + (i * n) // k for i in range(k)]


class VideoFrames:
    """Frames of one :class:`VideoSample`.

    Args:
        sample: the video.
        work_dir: folder receiving the resized model-input PNGs (one subfolder per video).
    """

    def __init__(self, sample: VideoSample, work_dir: str | Path):
        self.sample = sample
        self.work_dir = Path(work_dir) / safe_name(sample.video_id)
        self._video: np.ndarray | None = None
        self._paths: dict[tuple[int, int, int], str] = {}

    @property
    def num_frames(self) -> int:
        return self.sample.num_frames

    @property
    def size(self) -> tuple[int, int]:
        """Original frame size ``(W, H)``."""
        return self.sample.width, self.sample.height

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as ``H x W x 3`` uint8 RGB at the original resolution."""
        if self._video is not None:
            return self._video[t]
        try:
            image = self.sample.load_frame(t)
        except (OSError, ValueError) as exc:
            raise FrameError(f"video {self.sample.video_id!r} frame {t}: {exc}") from exc
        expected = (self.sample.height, self.sample.width, 3)
        if image.shape != expected:
            raise FrameError(
                f"video {self.sample.video_id!r} frame {t} ({self.sample.frame_paths[t]}) has shape {image.shape}, "
                f"expected {expected}"
            )
        return image

    def video(self) -> np.ndarray:
        """All frames, ``T x H x W x 3`` uint8, kept until :meth:`release`."""
        if self._video is None:
            self._video = np.stack([self.frame(t) for t in range(self.num_frames)])
        return self._video

    def release(self) -> None:
        """Drop the cached frame stack."""
        self._video = None

    def image_path(self, t: int, size: Sequence[int]) -> str:
        """Path of frame ``t`` resized to ``size`` ``[W, H]`` (written on first use)."""
        w, h = int(size[0]), int(size[1])
        key = (t, w, h)
        if key not in self._paths:
            name = f"{safe_name(self.sample.frame_names[t])}_{w}x{h}.png"
            path = self.work_dir / name
            write_png(path, cues.resize_image(self.frame(t), (w, h)))
            self._paths[key] = str(path)
        return self._paths[key]

    def image_paths(self, indices: Sequence[int], size: Sequence[int]) -> list[str]:
        return [self.image_path(int(t), size) for t in indices]
