"""Per-expression score rows and the benchmark summary (J, F, J&F, R; ReVOS splits).

Aggregation (matched to the MeViS / ReVOS / VISA tools):

* every expression contributes its frame-averaged J and F (and R for ReVOS);
* J = mean over expressions of J, likewise F and R; J&F = (J + F) / 2, which
  equals the mean over expressions of (J + F) / 2; reported x100;
* ``J&F_stderr``: standard error of J&F (x100): sample std (ddof=1) of the per-expression
  J&F over sqrt(count); for a ReVOS ``overall`` (the mean of two split means) the split
  errors combine as ``sqrt(se_ref^2 + se_reas^2) / 2``; None below 2 expressions;
* ``multi_target`` / ``single_target`` (when rows carry ``num_objects``): the expressions
  whose ground truth has > 1 object / exactly 1 (plain means; no-target rows are in neither);
* ReVOS (``by_type=True``): ``referring`` = expressions with type_id 0,
  ``reasoning`` = type_id 1, ``overall`` = unweighted mean of the two split
  values (not the mean over all expressions). No-target expressions (type_id 2)
  are scored like the others but, as in the ReVOS/VISA tool, enter none of the
  three; they are reported separately under ``no_target`` for information.
  The top-level J / F / J&F / R of a ReVOS summary are the ``overall`` values.
* Differences from the reference: it rounds each expression's x100 scores to 2
  decimals before averaging (here nothing is rounded; at most 0.005 apart);
  a split without expressions gives NaN there, here ``null`` and ``overall``
  falls back to the split that exists (with a note).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from data.types import NO_TARGET, REASONING, REFERRING

SPLITS = {"referring": REFERRING, "reasoning": REASONING}


@dataclass(frozen=True)
class ExpressionScore:
    """Scores of one expression (fractions in [0, 1], averaged over its frames) and prediction-file counts."""

    video: str
    exp_id: str
    type_id: int
    j: float
    f: float
    num_frames: int
    r: Optional[float] = None
    missing_frames: int = 0      # prediction PNG absent -> scored as an empty mask
    resized_frames: int = 0      # prediction of another size -> resized (nearest) to the GT size
    unreadable_frames: int = 0   # prediction PNG present but not decodable -> scored as empty
    num_objects: Optional[int] = None   # objects of the expression's ground truth (None: unknown)

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2.0


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def stderr(values: Sequence[float]) -> Optional[float]:
    """Standard error of the mean: sample std (ddof=1) / sqrt(count); None below 2 values."""
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


class MetricAccumulator:
    """Collects :class:`ExpressionScore` rows; :meth:`summary` gives the benchmark numbers (x100).

    Args:
        by_type: ReVOS mode (referring / reasoning / overall splits by type_id).
        with_robustness: rows carry R and the summary reports it.
    """

    def __init__(self, by_type: bool = False, with_robustness: bool = False) -> None:
        self.by_type = by_type
        self.with_robustness = with_robustness
        self._rows: list[ExpressionScore] = []

    # ------------------------------------------------------------------ input
    def add(self, row: ExpressionScore) -> None:
        for name in ("j", "f") + (("r",) if self.with_robustness else ()):
            value = getattr(row, name)
            if value is None or not (-1e-9 <= value <= 1.0 + 1e-9):   # also rejects NaN
                raise ValueError(f"{row.video}/{row.exp_id}: {name} must be in [0, 1], got {value!r}")
        self._rows.append(row)

    def extend(self, rows: Iterable[ExpressionScore]) -> None:
        for row in rows:
            self.add(row)

    @property
    def rows(self) -> list[ExpressionScore]:
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    # ---------------------------------------------------------------- summary
    def _block(self, rows: Sequence[ExpressionScore]) -> Optional[dict]:
        if not rows:
            return None
        j = 100.0 * _mean([r.j for r in rows])
        f = 100.0 * _mean([r.f for r in rows])
        block = {"J": j, "F": f, "J&F": (j + f) / 2.0}
        if self.with_robustness:
            block["R"] = 100.0 * _mean([r.r for r in rows])  # type: ignore[misc]
        se = stderr([r.jf for r in rows])
        block["J&F_stderr"] = None if se is None else 100.0 * se
        block["num_expressions"] = len(rows)
        return block

    def _target_blocks(self, rows: Sequence[ExpressionScore]) -> dict:
        """``multi_target`` (> 1 GT object) and ``single_target`` (1) blocks when the rows know their objects."""
        if not rows or any(r.num_objects is None for r in rows):
            return {}
        return {"multi_target": self._block([r for r in rows if r.num_objects > 1]),   # type: ignore[operator]
                "single_target": self._block([r for r in rows if r.num_objects == 1])}

    def summary(self) -> dict:
        """Summary dict: ``J``, ``F``, ``J&F`` (+ ``R``) x100, ``num_expressions``; ReVOS adds the split blocks.

        Values are ``None`` when there is nothing to average.
        """
        keys = ["J", "F", "J&F"] + (["R"] if self.with_robustness else [])
        if not self.by_type:
            block = self._block(self._rows) or {**{k: None for k in keys}, "J&F_stderr": None, "num_expressions": 0}
            return {**block, **self._target_blocks(self._rows)}

        out: dict = {}
        split_blocks = {}
        for name, type_id in SPLITS.items():
            split_blocks[name] = self._block([r for r in self._rows if r.type_id == type_id])
        present = [b for b in split_blocks.values() if b is not None]
        if present:
            overall = {k: _mean([b[k] for b in present]) for k in keys}
            errors = [b["J&F_stderr"] for b in present]
            overall["J&F_stderr"] = (None if None in errors
                                     else math.sqrt(math.fsum(e * e for e in errors)) / len(present))
            overall["num_expressions"] = sum(b["num_expressions"] for b in present)
        else:
            overall = {**{k: None for k in keys}, "J&F_stderr": None, "num_expressions": 0}
        out.update({k: overall[k] for k in keys})
        out["J&F_stderr"] = overall["J&F_stderr"]
        out.update(self._target_blocks([r for r in self._rows if r.type_id in SPLITS.values()]))
        out["num_expressions"] = overall["num_expressions"]
        out["referring"] = split_blocks["referring"]
        out["reasoning"] = split_blocks["reasoning"]
        out["overall"] = overall
        out["no_target"] = self._block([r for r in self._rows if r.type_id == NO_TARGET])
        others = sorted({r.type_id for r in self._rows} - {REFERRING, REASONING, NO_TARGET})
        notes = ["overall = unweighted mean of the referring and reasoning values; "
                 "no_target (type_id 2) expressions are not part of it (as in the ReVOS/VISA tool)"]
        missing = [name for name, b in split_blocks.items() if b is None]
        if missing and present:
            notes.append(f"no {' / '.join(missing)} expressions: overall = the other split only")
        if others:
            notes.append(f"type_id values {others} are not part of any split")
        out["notes"] = notes
        return out

    # ------------------------------------------------------------------ files
    def write_csv(self, path: Path) -> None:
        """One row per expression: video, exp_id, type_id, J, F, J&F (x100) [, R], frame counts."""
        columns = ["video", "exp_id", "type_id", "J", "F", "J&F"] + (["R"] if self.with_robustness else [])
        columns += ["num_frames", "missing_frames", "resized_frames", "unreadable_frames"]
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for r in self._rows:
                values = [r.video, r.exp_id, r.type_id, f"{100 * r.j:.6f}", f"{100 * r.f:.6f}", f"{100 * r.jf:.6f}"]
                if self.with_robustness:
                    values.append(f"{100 * r.r:.6f}")  # type: ignore[operator]
                values += [r.num_frames, r.missing_frames, r.resized_frames, r.unreadable_frames]
                writer.writerow(values)
