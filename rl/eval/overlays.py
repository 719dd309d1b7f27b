"""Keyframe overlays of an evaluation: which expressions are drawn, their captions and scores.

An :class:`Overlay` keeps the keyframe and the predicted and GT masks apart (W&B shows them
as two mask layers that can be switched on and off) and knows its video, expression,
query and, once scored, its J&F. The pipeline keeps at most ``eval.num_overlays`` per
worker, spread over the videos (:func:`overlay_quota`); after the workers' reports are
merged, :func:`select_overlays` keeps ``eval.num_overlays`` of them, one video after the
other, and :func:`attach_scores` reads their J&F from ``OUT/per_expression.csv``.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

#: Overlays smaller than this on their short side are enlarged (nearest neighbour, integer factor).
MIN_SIDE = 384
#: Mask values of the two W&B mask layers (distinct, so W&B gives them different colours).
PREDICTION_CLASS = 1
GROUND_TRUTH_CLASS = 2


@dataclass
class Overlay:
    """One expression's keyframe with its predicted and GT masks.

    ``frame``: ``H x W x 3`` uint8; ``pred``: ``H x W`` bool; ``gt``: ``H x W`` bool, or None
    when the split has no GT masks; ``jf``: the expression's J&F (0-100), None until scored.
    """

    video: str
    exp_id: str
    query: str
    keyframe: int
    frame: np.ndarray
    pred: np.ndarray
    gt: Optional[np.ndarray] = None
    jf: Optional[float] = None

    @property
    def key(self) -> tuple[str, str]:
        return self.video, self.exp_id

    def caption(self) -> str:
        """``<video> #<exp_id> frame <k>: "<query>" | J&F 53.2`` (``J&F n/a`` before scoring / without GT)."""
        score = "n/a" if self.jf is None or not math.isfinite(self.jf) else f"{self.jf:.1f}"
        return f'{self.video} #{self.exp_id} frame {self.keyframe}: "{self.query}" | J&F {score}'

    def slug(self) -> str:
        """A file-name-safe ``<video>_<exp_id>``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.video}_{self.exp_id}").strip("-") or "overlay"

    def scale(self, min_side: int = MIN_SIDE) -> int:
        """The integer enlargement that brings the short side to at least ``min_side`` (1: large enough)."""
        short = min(self.frame.shape[:2])
        return max(1, math.ceil(min_side / max(1, short)))

    def layers(self, min_side: int = MIN_SIDE) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """The enlarged ``(frame, pred, gt)``: ``sH x sW x 3`` uint8, ``sH x sW`` bool, ``sH x sW`` bool or None."""
        s = self.scale(min_side)
        return (upscale(self.frame, s), upscale(self.pred.astype(bool), s),
                upscale(self.gt.astype(bool), s) if self.gt is not None else None)

    def blended(self, min_side: int = MIN_SIDE) -> np.ndarray:
        """The keyframe with the prediction tinted red and the GT boundary green, enlarged (``sH x sW x 3``
        uint8; drawn before enlarging, so the boundary is ``s`` pixels wide)."""
        from rl.eval.diagnostics import overlay

        gt = self.gt.astype(bool) if self.gt is not None else None
        return upscale(overlay(self.frame, self.pred.astype(bool), gt), self.scale(min_side))

    def mask_layers(self, min_side: int = MIN_SIDE) -> dict[str, dict[str, object]]:
        """``wandb.Image(masks=...)`` layers: ``prediction`` and (with GT) ``ground_truth``, each
        ``{"mask_data": sH x sW uint8, "class_labels": {value: name}}``."""
        _, pred, gt = self.layers(min_side)
        layers: dict[str, dict[str, object]] = {"prediction": {
            "mask_data": pred.astype(np.uint8) * PREDICTION_CLASS,
            "class_labels": {0: "background", PREDICTION_CLASS: "prediction"}}}
        if gt is not None:
            layers["ground_truth"] = {
                "mask_data": gt.astype(np.uint8) * GROUND_TRUTH_CLASS,
                "class_labels": {0: "background", GROUND_TRUTH_CLASS: "ground truth"}}
        return layers


def upscale(array: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer ``factor`` of an ``H x W`` or ``H x W x C`` array."""
    if factor <= 1:
        return array
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)


def overlay_quota(num_overlays: int, num_videos: int) -> int:
    """Overlays one video may give so that ``num_overlays`` spread over ``num_videos`` videos."""
    return max(1, math.ceil(num_overlays / max(1, num_videos))) if num_overlays > 0 else 0


def select_overlays(overlays: Sequence[Overlay], limit: int) -> list[Overlay]:
    """At most ``limit`` overlays, one per distinct (video, expression), taken round-robin over
    the videos (the first of every video, then the second, ...), in first-seen video order."""
    by_video: dict[str, list[Overlay]] = {}
    seen: set[tuple[str, str]] = set()
    for item in overlays:
        if item.key not in seen:
            seen.add(item.key)
            by_video.setdefault(item.video, []).append(item)
    chosen: list[Overlay] = []
    depth = 0
    while len(chosen) < limit and any(len(v) > depth for v in by_video.values()):
        chosen += [v[depth] for v in by_video.values() if len(v) > depth][: limit - len(chosen)]
        depth += 1
    return chosen


def attach_scores(overlays: Sequence[Overlay], per_expression_csv: str | Path) -> None:
    """Set each overlay's ``jf`` from the scored ``per_expression.csv`` (left None when absent)."""
    path = Path(per_expression_csv)
    if not path.is_file():
        return
    scores: dict[tuple[str, str], float] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                scores[(row["video"], row["exp_id"])] = float(row["J&F"])
            except (KeyError, TypeError, ValueError):
                continue
    for item in overlays:
        item.jf = scores.get(item.key, item.jf)


__all__ = ["MIN_SIDE", "Overlay", "attach_scores", "overlay_quota", "select_overlays", "upscale"]
