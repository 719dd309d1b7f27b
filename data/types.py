"""The one in-memory type every dataset reader produces: :class:`VideoSample`.

Frames and masks are loaded lazily (on each call); a reader never loads a
whole data set. Arrays: frames ``H x W x 3`` uint8 RGB, masks ``H x W`` bool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

# ReVOS expression types (type_id).
REFERRING, REASONING, NO_TARGET = 0, 1, 2
TYPE_NAMES = {REFERRING: "referring", REASONING: "reasoning", NO_TARGET: "no_target"}


@dataclass(frozen=True)
class Expression:
    """One referring / reasoning expression of a video.

    ``obj_ids`` are the keys of :attr:`VideoSample.mask_loaders` this expression
    refers to (Ref-YouTube-VOS/DAVIS: palette object ids as str; MeViS/ReVOS:
    anno ids as str). Empty for a no-target expression.
    """

    exp_id: str
    text: str
    obj_ids: tuple[str, ...]
    type_id: int = REFERRING


@dataclass
class VideoSample:
    """A video with its expressions and lazily loaded frames / per-object masks."""

    dataset: str                       # mevis | revos | refytvos | davis | synthetic
    split: str                         # train | valid | valid_u | test ...
    video_id: str
    frame_names: list[str]             # e.g. ["00000", "00005", ...]
    frame_paths: list[Path]
    height: int
    width: int
    expressions: dict[str, Expression]
    # obj_id -> callable(frame_index) -> H x W bool mask (all False where absent).
    mask_loaders: dict[str, Callable[[int], np.ndarray]] = field(default_factory=dict, repr=False)
    # Optional per-frame foreground of *all* annotated objects (ReVOS mask_dict_foreground), for the R score.
    foreground_loader: Optional[Callable[[int], np.ndarray]] = field(default=None, repr=False)
    # False for splits released without ground truth (MeViS valid, Ref-YouTube-VOS valid/test):
    # expressions and frames are usable, masks are not.
    has_masks: bool = True
    # Format-specific extras (e.g. MeViS/ReVOS "vid_id", Ref-YouTube-VOS meta.json object categories).
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    def load_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``H x W x 3`` uint8 RGB (raises ``FileNotFoundError`` / ``ValueError`` with the path)."""
        from data.io import read_rgb

        return read_rgb(self.frame_paths[index])

    def object_mask(self, obj_id: str, index: int) -> np.ndarray:
        """``H x W`` bool mask of one object on frame ``index``."""
        if not self.has_masks:
            raise LookupError(f"{self.dataset}/{self.split} video {self.video_id!r} has no ground-truth masks")
        if not -self.num_frames <= index < self.num_frames:
            raise IndexError(f"frame index {index} out of range for video {self.video_id!r} ({self.num_frames} frames)")
        try:
            loader = self.mask_loaders[obj_id]
        except KeyError:
            raise KeyError(
                f"video {self.video_id!r} has no mask for object {obj_id!r}; known: {sorted(self.mask_loaders)}"
            ) from None
        return loader(index % self.num_frames)

    def expression_mask(self, exp_id: str, index: int) -> np.ndarray:
        """``H x W`` bool union of the expression's objects on frame ``index`` (all False for no target)."""
        if not self.has_masks:
            raise LookupError(f"{self.dataset}/{self.split} video {self.video_id!r} has no ground-truth masks")
        mask = np.zeros((self.height, self.width), dtype=bool)
        for obj_id in self.expressions[exp_id].obj_ids:
            mask |= self.object_mask(obj_id, index)
        return mask

    def expression_masks(self, exp_id: str) -> np.ndarray:
        """``T x H x W`` bool union masks over all frames."""
        return np.stack([self.expression_mask(exp_id, t) for t in range(self.num_frames)])
