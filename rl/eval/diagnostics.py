"""Evaluation reports: per-expression diagnostics, the mergeable prediction report, the overlay drawing.

:class:`ExpressionDiagnostics` is one row of ``OUT/diagnostics.csv``; :class:`PredictReport`
collects what a prediction pass did (reports of several workers merge);
``diagnostics_summary`` gives the means written under ``diagnostics`` in ``summary.json``.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from rl.eval.overlays import Overlay


@dataclass
class ExpressionDiagnostics:
    """Per-expression record of ``diagnostics.csv`` (GT-based fields are None without masks)."""

    video: str
    exp_id: str
    type_id: int
    num_targets: int
    keyframe: int
    grounding: str
    num_objects: int
    keyframe_mask_area: int
    keyframe_area_ratio: Optional[float] = None
    initial_keyframe: Optional[int] = None
    initial_area_ratio: Optional[float] = None
    aks_rounds: Optional[int] = None
    htfs_levels: Optional[int] = None
    segment: Optional[str] = None
    reference_frames: str = ""
    box_iou: Optional[float] = None
    fallbacks: str = ""


@dataclass
class PredictReport:
    """What :meth:`EvalPipeline.predict` did (picklable; reports of several workers merge)."""

    video_ids: list[str] = field(default_factory=list)
    # Predicted videos of a split released without masks (not scored).
    no_gt: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    rows: list[ExpressionDiagnostics] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    # Keyframes with predicted / GT masks kept for the W&B overlays (rl.eval.overlays).
    overlays: list[Overlay] = field(default_factory=list)
    mllm: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "PredictReport") -> "PredictReport":
        self.video_ids += other.video_ids
        self.no_gt += other.no_gt
        self.skipped += other.skipped
        self.rows += other.rows
        for k, v in other.timing.items():
            self.timing[k] = self.timing.get(k, 0.0) + v
        self.stats.update(other.stats)
        self.overlays += other.overlays
        for k, v in other.mllm.items():
            self.mllm[k] = self.mllm.get(k, 0) + v
        return self


def _mean(values: Iterable[Optional[float]]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None]
    return math.fsum(vals) / len(vals) if vals else None


def diagnostics_summary(rows: Sequence[ExpressionDiagnostics]) -> dict[str, Any]:
    """Means of the RCoT-Seg diagnostics over the expressions that have them."""
    return {
        "keyframe_area_ratio": _mean(r.keyframe_area_ratio for r in rows),
        "initial_area_ratio": _mean(r.initial_area_ratio for r in rows),
        "aks_rounds": _mean(r.aks_rounds for r in rows),
        "htfs_levels": _mean(r.htfs_levels for r in rows),
        "box_iou_before_segmentation": _mean(r.box_iou for r in rows),
        "empty_keyframe_masks": sum(1 for r in rows if r.keyframe_mask_area == 0),
        "num_expressions": len(rows),
    }


def write_diagnostics_csv(path: Path, rows: Sequence[ExpressionDiagnostics]) -> None:
    names = [f for f in ExpressionDiagnostics.__dataclass_fields__]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(row).items()})


def overlay(image: np.ndarray, pred: np.ndarray, gt: Optional[np.ndarray] = None, alpha: float = 0.5) -> np.ndarray:
    """``H x W x 3`` uint8: ``image`` with the predicted mask tinted red and the GT boundary in green."""
    out = image.astype(np.float32).copy()
    red = np.array([255.0, 0.0, 0.0], dtype=np.float32)
    out[pred] = (1 - alpha) * out[pred] + alpha * red
    if gt is not None and gt.any():
        from rl.eval.boundary import seg2bmap

        out[seg2bmap(gt).astype(bool)] = (0.0, 255.0, 0.0)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


__all__ = ["ExpressionDiagnostics", "PredictReport", "diagnostics_summary", "write_diagnostics_csv", "overlay"]
