"""CPU default segmenter: OpenCV GrabCut seeded by the box and the points of each object.

Per object the GrabCut label map starts as: outside the box definite background,
inside the box probable foreground, a disc of ``point_radius`` around every
positive point definite foreground and around every negative point definite
background (positive marks win where they overlap). Without a box the whole image
is probable background except a probable-foreground disc of ``point_only_radius``
(a fraction of the image's shorter side) around each positive point. GrabCut runs
on that seed region plus a context margin (faster, and a local background colour
model), and the object masks of a prompt set are OR'd.

Degenerate cues never raise: malformed cues (the rule of :mod:`rewards.vision.prompts`:
non-finite, reversed boxes, boxes with no pixel in the image, points outside the image)
are dropped, objects with nothing left are skipped, all counted in :attr:`stats`; boxes
thinner than ``min_box_side`` pixels are filled rather than segmented.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Sequence

import cv2
import numpy as np

from rewards.vision.base import ObjectPrompt
from rewards.vision.prompts import (
    NEGATIVE,
    POSITIVE,
    CleanPrompt,
    box_to_pixel_slice,
    check_image,
    clean_prompt,
    round_half_up,
    union_per_set,
    unique_prompts,
)

logger = logging.getLogger(__name__)


class GrabCutSegmenter:
    """Classical box/point-prompted segmenter with the :class:`~rewards.vision.base.Segmenter` interface.

    Args:
        iterations: GrabCut iterations per object (``SegmenterConfig.grabcut_iterations``).
        point_radius: radius in pixels of the definite fg/bg disc drawn at each point.
        context_margin: context added on each side of the box for the GrabCut crop, as a
            fraction of the box side (at least ``min_context_px`` pixels).
        min_context_px: smallest context margin in pixels.
        min_box_side: boxes whose clipped width or height is below this are filled, not segmented.
        point_only_radius: without a box, radius of the probable-foreground disc around each
            positive point, as a fraction of the image's shorter side.
        seed: OpenCV RNG seed set before each GrabCut call (its GMM initialisation is random).

    :attr:`stats` counts ``objects_segmented``, ``box_fill_fallbacks``, ``objects_skipped``,
    ``boxes_dropped`` / ``boxes_outside_image``, ``points_dropped`` / ``points_outside_image``
    and ``grabcut_errors``.
    """

    def __init__(
        self,
        iterations: int = 3,
        point_radius: int = 2,
        context_margin: float = 0.5,
        min_context_px: int = 8,
        min_box_side: int = 3,
        point_only_radius: float = 0.15,
        seed: int = 0,
    ) -> None:
        if iterations < 1:
            raise ValueError(f"grabcut iterations must be >= 1, got {iterations}")
        if point_radius < 0 or min_context_px < 0 or context_margin < 0 or min_box_side < 1 or point_only_radius < 0:
            raise ValueError(
                "grabcut point_radius, context_margin, min_context_px, point_only_radius must be >= 0 and "
                f"min_box_side >= 1, got {point_radius}, {context_margin}, {min_context_px}, {point_only_radius}, "
                f"{min_box_side}"
            )
        self.iterations = iterations
        self.point_radius = point_radius
        self.context_margin = context_margin
        self.min_context_px = min_context_px
        self.min_box_side = min_box_side
        self.point_only_radius = point_only_radius
        self.seed = seed
        self.stats: Counter = Counter()

    def segment(self, image: np.ndarray, prompt_sets: Sequence[Sequence[ObjectPrompt]]) -> list[np.ndarray]:
        """One ``H x W`` bool mask per prompt set (union of its objects); empty set -> all False."""
        image = check_image(image)
        height, width = image.shape[:2]
        masks = {key: self.segment_object(image, prompt) for key, prompt in unique_prompts(prompt_sets).items()}
        return union_per_set(prompt_sets, masks, height, width)

    def segment_object(self, image: np.ndarray, prompt: ObjectPrompt) -> np.ndarray | None:
        """``H x W`` bool mask of one object, or None when its cues leave nothing to segment."""
        height, width = image.shape[:2]
        clean = clean_prompt(prompt, self.stats)
        box_slices = None
        if clean.box is not None:
            box_slices = box_to_pixel_slice(clean.box, height, width)
            if box_slices is None:
                self.stats["boxes_outside_image"] += 1
        points, labels = self._points_in_image(clean, height, width)
        if box_slices is None and not np.any(labels == POSITIVE):
            self.stats["objects_skipped"] += 1
            logger.debug("grabcut: object skipped, no box or positive point in the %dx%d image: %r", height, width, prompt)
            return None
        if box_slices is not None:
            rows, cols = box_slices
            if min(rows.stop - rows.start, cols.stop - cols.start) < self.min_box_side:
                self.stats["box_fill_fallbacks"] += 1
                mask = np.zeros((height, width), dtype=bool)
                mask[rows, cols] = True
                return mask
        return self._grabcut(image, box_slices, points, labels)

    # ------------------------------------------------------------------ helpers

    def _points_in_image(self, clean: CleanPrompt, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Points rounded to integer pixels (``K x 2`` int, x y) inside the image, and their labels."""
        if len(clean.points) == 0:
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
        pix = np.array([[round_half_up(x), round_half_up(y)] for x, y in clean.points], dtype=np.int64)
        inside = (pix[:, 0] >= 0) & (pix[:, 0] < width) & (pix[:, 1] >= 0) & (pix[:, 1] < height)
        self.stats["points_outside_image"] += int((~inside).sum())
        return pix[inside], clean.labels[inside]

    def _seed_region(
        self, box_slices: tuple[slice, slice] | None, points: np.ndarray, labels: np.ndarray, height: int, width: int
    ) -> tuple[tuple[slice, slice], int]:
        """Seed rectangle (rows, cols): the box, else the bounding square of the point-only discs; and the disc radius."""
        if box_slices is not None:
            return box_slices, 0
        radius = max(self.point_radius, int(round(self.point_only_radius * min(height, width))))
        pos = points[labels == POSITIVE]
        rows = slice(max(int(pos[:, 1].min()) - radius, 0), min(int(pos[:, 1].max()) + radius + 1, height))
        cols = slice(max(int(pos[:, 0].min()) - radius, 0), min(int(pos[:, 0].max()) + radius + 1, width))
        return (rows, cols), radius

    def _roi(self, seed_region: tuple[slice, slice], height: int, width: int) -> tuple[slice, slice]:
        """Crop (rows, cols) GrabCut runs on: the seed region plus context on each side."""
        rows, cols = seed_region
        my = max(self.min_context_px, int(self.context_margin * (rows.stop - rows.start)))
        mx = max(self.min_context_px, int(self.context_margin * (cols.stop - cols.start)))
        return (
            slice(max(rows.start - my, 0), min(rows.stop + my, height)),
            slice(max(cols.start - mx, 0), min(cols.stop + mx, width)),
        )

    def _initial_labels(
        self,
        roi: tuple[slice, slice],
        box_slices: tuple[slice, slice] | None,
        disc_radius: int,
        points: np.ndarray,
        labels: np.ndarray,
    ) -> np.ndarray:
        """GrabCut label map (``h x w`` uint8 of cv2.GC_*) of the crop ``roi``."""
        rows, cols = roi
        shape = (rows.stop - rows.start, cols.stop - cols.start)
        if box_slices is not None:
            init = np.full(shape, cv2.GC_BGD, np.uint8)
            br, bc = box_slices
            init[br.start - rows.start : br.stop - rows.start, bc.start - cols.start : bc.stop - cols.start] = cv2.GC_PR_FGD
        else:
            init = np.full(shape, cv2.GC_PR_BGD, np.uint8)
            for x, y in points[labels == POSITIVE]:
                cv2.circle(init, (int(x - cols.start), int(y - rows.start)), disc_radius, int(cv2.GC_PR_FGD), -1)
        for label, value in ((NEGATIVE, cv2.GC_BGD), (POSITIVE, cv2.GC_FGD)):
            for x, y in points[labels == label]:
                if rows.start <= y < rows.stop and cols.start <= x < cols.stop:
                    cv2.circle(init, (int(x - cols.start), int(y - rows.start)), self.point_radius, int(value), -1)
        background = (init == cv2.GC_BGD) | (init == cv2.GC_PR_BGD)
        if not background.any():
            # The seeds cover the whole crop (e.g. a box over the whole image): let the border be probable background.
            border = np.zeros_like(background)
            border[[0, -1], :] = True
            border[:, [0, -1]] = True
            init[border & (init != cv2.GC_FGD)] = cv2.GC_PR_BGD
        return init

    def _grabcut(
        self,
        image: np.ndarray,
        box_slices: tuple[slice, slice] | None,
        points: np.ndarray,
        labels: np.ndarray,
    ) -> np.ndarray:
        height, width = image.shape[:2]
        seed_region, disc_radius = self._seed_region(box_slices, points, labels, height, width)
        roi = self._roi(seed_region, height, width)
        init = self._initial_labels(roi, box_slices, disc_radius, points, labels)
        labels_map = init.copy()
        crop = np.ascontiguousarray(image[roi])
        bgd_model = np.zeros((1, 65), np.float64)
        fgd_model = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(self.seed)
        try:
            cv2.grabCut(crop, labels_map, None, bgd_model, fgd_model, self.iterations, cv2.GC_INIT_WITH_MASK)
            self.stats["objects_segmented"] += 1
        except cv2.error as err:
            # Too few samples for a colour model (tiny crops): keep the seeds as the answer.
            self.stats["grabcut_errors"] += 1
            logger.warning("grabcut failed on a %dx%d crop, keeping the initial labels: %s", *crop.shape[:2], err)
            labels_map = init
        mask = np.zeros((height, width), dtype=bool)
        mask[roi] = (labels_map == cv2.GC_FGD) | (labels_map == cv2.GC_PR_FGD)
        return mask
