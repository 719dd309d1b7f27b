"""Experiment tracking: an always-on ``metrics.jsonl`` plus W&B (online, offline or disabled).

Metric names follow verl (``critic/score/mean``, ``actor/pg_loss``,
``timing_s/gen``, ``perf/throughput``, ...). The W&B run id is kept by the
caller in checkpoints; passing it back resumes the same W&B run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from rl.config import TrackingConfig

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class Tracker:
    """Writes every logged step to ``<run_dir>/metrics.jsonl`` and, unless disabled, to W&B."""

    def __init__(
        self,
        run_dir: str | Path,
        cfg: TrackingConfig,
        config: dict[str, Any],
        run_id: Optional[str] = None,
        resume_step: Optional[int] = None,
        default_name: str = "",
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.samples_path = self.run_dir / "samples.jsonl"
        self.batches_path = self.run_dir / "batches.jsonl"
        files = (self.metrics_path, self.samples_path, self.batches_path)
        for path in files:
            if resume_step is not None:
                # Steps after the checkpoint are re-run: drop their stale lines.
                self._truncate(path, resume_step)
            else:
                path.unlink(missing_ok=True)
        self._wandb = None
        self.run_id = run_id
        if cfg.wandb_mode != "disabled":
            self._wandb = self._init_wandb(cfg, config, run_id, default_name)

    @staticmethod
    def _truncate(path: Path, last_step: int) -> None:
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if int(json.loads(line).get("step", 0)) <= last_step:
                    kept.append(line)
            except (ValueError, TypeError, json.JSONDecodeError):
                continue
        path.write_text("".join(line + "\n" for line in kept))

    def _init_wandb(self, cfg: TrackingConfig, config: dict[str, Any], run_id: Optional[str], default_name: str):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            mode=cfg.wandb_mode,
            project=cfg.project,
            entity=cfg.entity or None,
            group=cfg.group or None,
            name=cfg.name or default_name or None,
            tags=list(cfg.tags) or None,
            config=config,
            dir=str(self.run_dir),
            id=run_id,
            resume="allow" if run_id else None,
        )
        self.run_id = run.id
        return run

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in row.items() if k != "step"}, step=step)

    def log_samples(self, rows: Sequence[dict[str, Any]], step: int, table: str = "samples") -> None:
        """A table of sample responses with their rewards (``samples.jsonl`` + a W&B table)."""
        with self.samples_path.open("a") as f:
            for row in rows:
                f.write(json.dumps({"step": step, "table": table, **{k: _jsonable(v) for k, v in row.items()}}) + "\n")
        if self._wandb is not None and rows:
            import wandb

            columns = list(rows[0].keys())
            data = [[_jsonable(r.get(c)) for c in columns] for r in rows]
            self._wandb.log({table: wandb.Table(columns=columns, data=data)}, step=step)

    def log_batch(self, record_ids: Sequence[str], step: int) -> None:
        """The ids of the prompts a step trained on (``batches.jsonl``: audits data order and resumes)."""
        with self.batches_path.open("a") as f:
            f.write(json.dumps({"step": step, "ids": list(record_ids)}) + "\n")

    def finish(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of a run's ``metrics.jsonl`` (for tests and analysis)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
