"""Rank a sweep's trials by a validation metric: ``results.csv`` + a printed table.

Each trial's value comes from its own ``metrics.jsonl`` (``scope: last`` = the
last logged value of the metric, ``best`` = its best value over the run), its
parameters and W&B run id from its ``trial.json``, and its status (``finished``;
``stopped early`` by the scheduler; ``error`` as reported by Ray Tune; ``incomplete``
when the sweep was interrupted).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from rl.sweep.spec import SweepSpec
from rl.sweep.trial import TRIAL_FILE
from rl.tracking import read_metrics


@dataclass
class TrialResult:
    """One row of the ranking table."""

    name: str
    params: dict[str, Any]
    value: Optional[float]
    steps: int
    total_steps: int
    status: str
    run_dir: str
    wandb_run_id: str = ""
    error: str = ""
    rank: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def metric_value(rows: Sequence[dict[str, Any]], metric: str, scope: str, mode: str) -> Optional[float]:
    """The ``scope`` value (``last`` or ``best`` by ``mode``) of ``metric`` over logged rows; None if never logged."""
    values = []
    for row in rows:
        value = row.get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            values.append(float(value))
    if not values:
        return None
    if scope == "last":
        return values[-1]
    return max(values) if mode == "max" else min(values)


def trial_result(run_dir: str | Path, spec: SweepSpec, tune_error: str = "") -> TrialResult:
    """A trial's row from its run directory (``trial.json`` + ``metrics.jsonl``) and its Tune error, if any."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / TRIAL_FILE).read_text()) if (run_dir / TRIAL_FILE).is_file() else {}
    rows = read_metrics(run_dir)
    steps = max((int(r.get("step", 0)) for r in rows), default=0)
    total = int(info.get("total_steps", 0))
    if tune_error:
        status = "error"
    elif not total or steps >= total:
        status = "finished"
    elif steps > 0 and spec.scheduler.type != "none":
        status = "stopped early"
    else:
        status = "incomplete"
    return TrialResult(
        name=str(info.get("name", run_dir.name)), params=dict(info.get("params", {})),
        value=metric_value(rows, spec.metric, spec.scope, spec.mode), steps=steps, total_steps=total,
        status=status, run_dir=str(run_dir), wandb_run_id=str(info.get("wandb_run_id", "")), error=tune_error,
    )


def rank(results: Sequence[TrialResult], mode: str) -> list[TrialResult]:
    """Best first by ``mode``; trials without a value last (by name); ranks start at 1."""
    sign = -1.0 if mode == "max" else 1.0
    ordered = sorted(results, key=lambda r: (r.value is None, sign * (r.value or 0.0), r.name))
    for i, result in enumerate(ordered, 1):
        result.rank = i
    return ordered


def _columns(spec: SweepSpec) -> list[str]:
    return ["rank", "trial", *[p.key for p in spec.parameters], spec.metric, "steps", "status", "wandb_run_id",
            "run_dir", "error"]


def _row(result: TrialResult, spec: SweepSpec) -> list[Any]:
    value = "" if result.value is None else result.value
    return [result.rank, result.name, *[result.params.get(p.key, "") for p in spec.parameters], value,
            result.steps, result.status, result.wandb_run_id, result.run_dir, result.error]


def write_csv(results: Sequence[TrialResult], path: str | Path, spec: SweepSpec) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_columns(spec))
        for result in results:
            writer.writerow(_row(result, spec))
    return path


def format_table(results: Sequence[TrialResult], spec: SweepSpec) -> str:
    """A plain-text table: rank, trial, swept values, the metric, steps, status."""
    shorts = [p.key.rsplit(".", 1)[-1] for p in spec.parameters]
    header = ["rank", "trial", *shorts, f"{spec.metric} ({spec.scope}, {spec.mode})", "steps", "status"]
    body = []
    for r in results:
        value = "-" if r.value is None else f"{r.value:.4f}"
        params = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (r.params.get(p.key, "") for p in spec.parameters)]
        body.append([str(r.rank), r.name, *params, value, f"{r.steps}/{r.total_steps or '?'}", r.status])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
