"""``BoxFillSegmenter``: the mask of an object is its (clipped) predicted box, filled.

Trivial, exact and fast: for tests, and as an ablation that isolates the box
quality from the segmenter. Points are ignored; an object without a usable box
contributes nothing (counted in :attr:`stats`).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from rewards.vision.base import ObjectPrompt
from rewards.vision.prompts import box_to_pixel_slice, check_image, clean_prompt, union_per_set, unique_prompts


class BoxFillSegmenter:
    """Fills each object's box, pixel columns ``x1..x2`` and rows ``y1..y2`` inclusive, clipped to the image.

    Coordinates are rounded half up, so the box of a mask's extreme pixels fills back
    exactly that mask's bounding rectangle. :attr:`stats` counts ``objects_filled``,
    ``objects_skipped`` (no usable box), ``boxes_dropped`` (reversed / non-finite) and
    ``boxes_outside_image``.
    """

    def __init__(self) -> None:
        self.stats: Counter = Counter()

    def segment(self, image: np.ndarray, prompt_sets: Sequence[Sequence[ObjectPrompt]]) -> list[np.ndarray]:
        """One ``H x W`` bool mask per prompt set: the union of its filled boxes."""
        image = check_image(image)
        height, width = image.shape[:2]
        masks: dict = {}
        for key, prompt in unique_prompts(prompt_sets).items():
            masks[key] = self._fill(clean_prompt(prompt, self.stats).box, height, width)
        return union_per_set(prompt_sets, masks, height, width)

    def _fill(self, box: tuple[float, float, float, float] | None, height: int, width: int) -> np.ndarray | None:
        if box is None:
            self.stats["objects_skipped"] += 1
            return None
        slices = box_to_pixel_slice(box, height, width)
        if slices is None:
            self.stats["boxes_outside_image"] += 1
            self.stats["objects_skipped"] += 1
            return None
        mask = np.zeros((height, width), dtype=bool)
        mask[slices] = True
        self.stats["objects_filled"] += 1
        return mask
