"""CPU default propagator: dense optical flow (OpenCV Farneback) warps the mask frame to frame.

For each step ``prev -> cur`` the flow is computed *from* ``cur`` *to* ``prev``, so every
pixel of ``cur`` knows where it came from and the previous mask is sampled there
(backward warping: no holes, no collisions). The warped soft mask is thresholded
at ``threshold`` and lightly cleaned by a morphological opening then closing.
Both directions start from the keyframe: a forward pass keyframe -> last frame,
a backward pass keyframe -> first frame. An empty keyframe mask gives empty masks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np

from rewards.segmentation.video_inputs import check_video_inputs


@dataclass(frozen=True)
class FarnebackParams:
    """Arguments of ``cv2.calcOpticalFlowFarneback``.

    Defaults are the values of OpenCV's optical-flow tutorial except ``flags``: a Gaussian
    averaging window (``cv2.OPTFLOW_FARNEBACK_GAUSSIAN`` = 256), which lagged less behind a
    moving object than the box window on the project's synthetic videos.
    """

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    flags: int = cv2.OPTFLOW_FARNEBACK_GAUSSIAN


class FlowPropagator:
    """Optical-flow mask warping with the :class:`~rewards.segmentation.base.Propagator` interface.

    Args:
        farneback: optical-flow parameters.
        threshold: a warped soft mask value >= this is foreground.
        morph_kernel: side of the elliptical structuring element of the opening/closing
            cleanup (0 or 1 disables it).
    """

    def __init__(self, farneback: FarnebackParams | None = None, threshold: float = 0.5, morph_kernel: int = 3) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"flow propagator threshold must be in (0, 1], got {threshold}")
        if morph_kernel < 0:
            raise ValueError(f"flow propagator morph_kernel must be >= 0, got {morph_kernel}")
        self.farneback = farneback or FarnebackParams()
        self.threshold = threshold
        self.kernel = (
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (morph_kernel, morph_kernel)) if morph_kernel > 1 else None
        )

    def propagate(self, frames: Sequence[np.ndarray] | np.ndarray, keyframe: int, mask: np.ndarray) -> np.ndarray:
        """``T x H x W`` bool masks; entry ``keyframe`` equals ``mask`` (frames: ``T x H x W x 3`` uint8 RGB)."""
        video, keyframe, mask = check_video_inputs(frames, keyframe, mask)
        out = np.zeros(video.shape[:3], dtype=bool)
        out[keyframe] = mask
        if not mask.any():
            return out
        gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video]
        for order in (range(keyframe + 1, len(video)), range(keyframe - 1, -1, -1)):
            previous = keyframe
            for index in order:
                out[index] = self.warp(gray[previous], gray[index], out[previous])
                previous = index
        return out

    def warp(self, gray_prev: np.ndarray, gray_cur: np.ndarray, mask_prev: np.ndarray) -> np.ndarray:
        """Carry ``mask_prev`` (``H x W`` bool on ``gray_prev``) onto ``gray_cur`` (both ``H x W`` uint8)."""
        if not mask_prev.any():
            return np.zeros_like(mask_prev)
        # flow[y, x] = displacement from (x, y) in cur to its match in prev.
        flow = cv2.calcOpticalFlowFarneback(gray_cur, gray_prev, None, **asdict(self.farneback))
        height, width = mask_prev.shape
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        soft = cv2.remap(
            mask_prev.astype(np.float32),
            grid_x + flow[..., 0],
            grid_y + flow[..., 1],
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        warped = (soft >= self.threshold).astype(np.uint8)
        if self.kernel is not None:
            warped = cv2.morphologyEx(warped, cv2.MORPH_OPEN, self.kernel)
            warped = cv2.morphologyEx(warped, cv2.MORPH_CLOSE, self.kernel)
        return warped.astype(bool)
