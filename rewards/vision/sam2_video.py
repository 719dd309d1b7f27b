"""SAM2 video predictor as a :class:`~rewards.vision.base.Propagator` (RCoT-Seg / Veason-R1 style).

The keyframe mask is added with ``add_new_mask``; ``propagate_in_video`` runs
forward from the keyframe to the last frame, then with ``reverse=True`` from the
keyframe back to the first frame. sam2 1.1.0's ``init_state`` reads only a folder
of ``<int>.jpg`` frames (or an mp4), so in-memory frames are written as JPEGs of
quality ``jpeg_quality`` to a temporary folder, loaded, and the folder is deleted.
The module imports torch / sam2 only when a propagator is built.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from typing import Any, Sequence

import cv2
import numpy as np

from rewards.vision.sam2_common import build_sam2_model
from rewards.vision.video_inputs import check_video_inputs

logger = logging.getLogger(__name__)

OBJECT_ID = 1  # the single tracked object (the union mask of the expression)


def sam2_extension_available() -> bool:
    """Whether sam2's compiled ``_C`` extension (connected components for hole filling) is installed."""
    try:
        return importlib.util.find_spec("sam2._C") is not None
    except (ImportError, ValueError):
        return False


def write_jpeg_frames(video: np.ndarray, folder: str, quality: int) -> None:
    """Write ``T x H x W x 3`` uint8 RGB frames as ``folder/00000.jpg`` ... (names sort as ints)."""
    for index, frame in enumerate(video):
        path = os.path.join(folder, f"{index:05d}.jpg")
        if not cv2.imwrite(path, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise OSError(f"could not write the SAM2 video frame {path}")


class Sam2VideoPropagator:
    """Args:
        sam2_config: packaged sam2 config name; checkpoint: ``.pt`` path or empty for random weights
            (``FileNotFoundError`` if missing); image_size: multiple of 32; device: torch device.
        jpeg_quality: quality of the temporary JPEG frames (0-100).
        offload_video_to_cpu: keep the decoded frames on CPU (``init_state`` option).
        mask_threshold: logit threshold of a foreground pixel.
        seed: torch seed for random weights. model: an already built ``SAM2VideoPredictor`` to share.
    """

    def __init__(
        self,
        sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml",
        checkpoint: str = "",
        image_size: int = 1024,
        device: str = "cpu",
        jpeg_quality: int = 95,
        offload_video_to_cpu: bool = True,
        mask_threshold: float = 0.0,
        seed: int | None = 0,
        model: Any = None,
    ) -> None:
        if not 0 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [0, 100], got {jpeg_quality}")
        self.predictor = model if model is not None else build_sam2_model(sam2_config, checkpoint, image_size, device, True, seed)
        if getattr(self.predictor, "fill_hole_area", 0) > 0 and not sam2_extension_available():
            # Hole filling needs sam2's compiled _C extension (absent with SAM2_BUILD_CUDA=0);
            # without it sam2 prints an error on every frame and skips the step anyway.
            logger.info("sam2._C not built: SAM2 video hole filling (fill_hole_area) disabled")
            self.predictor.fill_hole_area = 0
        self.jpeg_quality = jpeg_quality
        self.offload_video_to_cpu = offload_video_to_cpu
        self.mask_threshold = mask_threshold

    @classmethod
    def from_config(cls, cfg: Any = None, **overrides: Any) -> "Sam2VideoPropagator":
        """Build from a ``SegmenterConfig``-like object (sam2_config, checkpoint, image_size, device)."""
        kwargs: dict[str, Any] = {}
        if cfg is not None:
            kwargs = dict(sam2_config=cfg.sam2_config, checkpoint=cfg.checkpoint, image_size=cfg.image_size, device=cfg.device)
        return cls(**{**kwargs, **overrides})

    def propagate(self, frames: Sequence[np.ndarray] | np.ndarray, keyframe: int, mask: np.ndarray) -> np.ndarray:
        """``T x H x W`` bool masks; entry ``keyframe`` equals ``mask`` (frames: ``T x H x W x 3`` uint8 RGB)."""
        video, keyframe, mask = check_video_inputs(frames, keyframe, mask)
        out = np.zeros(video.shape[:3], dtype=bool)
        out[keyframe] = mask
        if not mask.any():
            return out
        with tempfile.TemporaryDirectory(prefix="sam2_frames_") as folder:
            write_jpeg_frames(video, folder, self.jpeg_quality)
            state = self.predictor.init_state(video_path=folder, offload_video_to_cpu=self.offload_video_to_cpu)
        self.predictor.add_new_mask(state, frame_idx=keyframe, obj_id=OBJECT_ID, mask=mask)
        for reverse in (False, True):
            for index, _obj_ids, logits in self.predictor.propagate_in_video(state, start_frame_idx=keyframe, reverse=reverse):
                # logits: num_objects x 1 x H x W at the video resolution
                out[index] = (logits[0, 0] > self.mask_threshold).cpu().numpy()
        out[keyframe] = mask
        return out
