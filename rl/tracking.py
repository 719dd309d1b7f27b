"""Experiment tracking: an always-on ``metrics.jsonl`` plus W&B (online, offline or disabled).

Metric names follow verl (``critic/score/mean``, ``actor/pg_loss``,
``timing_s/gen``, ``perf/throughput``, ...). The W&B run id is kept by the
caller in checkpoints; passing it back resumes the same W&B run.

W&B steps never go backwards, repeat or go missing: a resumed run re-runs the
steps after its checkpoint, but the steps W&B already holds from the killed
process (read from the run's transaction logs under ``<run_dir>/wandb``,
remembered in ``wandb_step.json``) are written to ``metrics.jsonl`` only, and
checkpointed steps W&B lost with the killed process (its last, uncommitted
rows) are re-sent from ``metrics.jsonl``; so W&B has every step exactly once. Every metric is
plotted against ``training/global_step`` and grouped by its prefix
(``reward/*``, ``timing_s/*``, ``perf/*``, ...) via ``wandb.define_metric``.

At start the tracker logs the W&B run id and its URL (online) or, offline, the run id, the
local run folder and the ``wandb sync`` command that uploads it. Media (evaluation overlays
with switchable mask layers, the image column of the sample tables) are built in
:mod:`rl.tracking_media`. The SFT cold start (:mod:`rl.sft`) uses a tracker of its own: a
W&B run with ``job_type="sft"`` in the same project and group as the GRPO run.
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

# W&B x-axis of every metric group below (the driver logs it each step).
STEP_METRIC = "training/global_step"
METRIC_GROUPS = ("critic", "reward", "actor", "response_length", "prompt_length", "timing_s", "timing_busy_s",
                 "perf", "val", "eval", "training", "diversity")
# Highest step sent to W&B by earlier processes of this run (see the module docstring).
WANDB_STEP_FILE = "wandb_step.json"


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
        default_group: str = "",
        job_type: str = "",
        wandb_dir: Optional[str | Path] = None,
        step_metric: str = STEP_METRIC,
        metric_groups: Sequence[str] = METRIC_GROUPS,
    ):
        """``run_dir``: where ``metrics.jsonl`` / ``samples.jsonl`` / ``images/`` go; ``wandb_dir``: the
        folder whose ``wandb/`` holds the W&B files (default ``run_dir``); ``default_name`` /
        ``default_group``: W&B run name / group when ``tracking.name`` / ``tracking.group`` are empty;
        ``job_type``: the W&B job type (``grpo``, ``sft``, ...); ``step_metric``: the x-axis that
        ``metric_groups`` (``<group>/*``) are plotted against, logged with every step."""
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.wandb_dir = Path(wandb_dir) if wandb_dir is not None else self.run_dir
        self.step_metric = step_metric
        self.metric_groups = tuple(metric_groups)
        self.offline = cfg.wandb_mode == "offline"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.samples_path = self.run_dir / "samples.jsonl"
        self.batches_path = self.run_dir / "batches.jsonl"
        files = (self.metrics_path, self.samples_path, self.batches_path)
        self._wandb_min_step = self._wandb_high_water(resume_step, run_id)
        for path in files:
            if resume_step is not None:
                # Steps after the checkpoint are re-run: drop their stale lines.
                self._truncate(path, resume_step)
            else:
                path.unlink(missing_ok=True)
        self._wandb = None
        self.run_id = run_id
        if cfg.wandb_mode != "disabled":
            self.wandb_dir.mkdir(parents=True, exist_ok=True)
            self._wandb = self._init_wandb(cfg, config, run_id, default_name, default_group, job_type)
            if resume_step is not None:
                self._replay_to_wandb(resume_step)

    def _wandb_high_water(self, resume_step: Optional[int], run_id: Optional[str]) -> int:
        """Highest step earlier processes of this W&B run wrote (-1 for a fresh run: every step goes to W&B).

        Read from the run's transaction logs (a killed process loses its last, not yet
        committed step, so that step is logged again) and kept in ``wandb_step.json``.
        """
        from rl.wandb_offline import max_logged_step

        state = self.run_dir / WANDB_STEP_FILE
        if resume_step is None or not run_id:
            state.unlink(missing_ok=True)
            return -1
        high = -1
        try:
            high = int(json.loads(state.read_text())["step"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            pass
        try:
            logged = max_logged_step(self.wandb_dir / "wandb", run_id)
            high = high if logged is None else max(high, logged)
        except (OSError, ValueError) as exc:
            log.warning("cannot read the W&B files of run %s (%s); W&B may drop re-run steps", run_id, exc)
        state.write_text(json.dumps({"step": high}))
        if high > resume_step:
            log.info("W&B already has steps up to %d: re-run steps %d..%d go to metrics.jsonl only",
                     high, resume_step + 1, high)
        return high

    def _replay_to_wandb(self, resume_step: int) -> None:
        """Send W&B the checkpointed steps it lost with the killed process (``metrics.jsonl`` kept them)."""
        replayed = 0
        for row in read_metrics(self.run_dir):
            step = int(row.get("step", 0))
            if self._wandb_min_step < step <= resume_step:
                payload = {k: v for k, v in row.items() if k != "step"}
                payload.setdefault(self.step_metric, step)
                self._wandb.log(payload, step=step)
                replayed += 1
        if replayed:
            log.info("W&B: re-sent %d logged step(s) up to the checkpoint (step %d)", replayed, resume_step)
        self._wandb_min_step = max(self._wandb_min_step, resume_step)

    def _to_wandb(self, step: int) -> bool:
        return self._wandb is not None and step > self._wandb_min_step

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

    def _init_wandb(self, cfg: TrackingConfig, config: dict[str, Any], run_id: Optional[str], default_name: str,
                    default_group: str = "", job_type: str = ""):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(
            mode=cfg.wandb_mode,
            project=cfg.project,
            entity=cfg.entity or None,
            group=cfg.group or default_group or None,
            job_type=job_type or None,
            name=cfg.name or default_name or None,
            tags=list(cfg.tags) or None,
            config=config,
            dir=str(self.wandb_dir),
            id=run_id,
            resume="allow" if run_id else None,
        )
        self.run_id = run.id
        self._define_metrics(run)
        self._announce(run)
        return run

    def _announce(self, run: Any) -> None:
        """Log where the W&B run is: its URL, or (offline) its folder and the command that uploads it."""
        job_type = getattr(run, "job_type", "") or ""
        what = f"W&B run {run.id} ({getattr(run, 'project', '')}/{getattr(run, 'name', '')}"
        what += f", {job_type})" if job_type else ")"
        if self.offline:
            folder = self.offline_folder(run)
            log.info("%s is offline, files in %s; upload it with `wandb sync %s` (or `python -m launch.sync %s "
                     "--upload` for every run under the directory)", what, folder, folder, self.wandb_dir)
        else:
            log.info("%s: %s", what, getattr(run, "url", None) or "(no URL)")

    @staticmethod
    def offline_folder(run: Any) -> Path:
        """The ``offline-run-<time>-<id>`` folder of an offline run."""
        sync_dir = getattr(run.settings, "sync_dir", None)
        return Path(sync_dir) if sync_dir else Path(run.dir).parent

    def _define_metrics(self, run: Any) -> None:
        """Plot every metric group against the step metric; summaries that make sense per group."""
        run.define_metric(self.step_metric)
        for group in self.metric_groups:
            summary = "mean" if group in ("timing_s", "timing_busy_s", "perf") else None
            run.define_metric(f"{group}/*", step_metric=self.step_metric, summary=summary)
        if "val" in self.metric_groups:
            run.define_metric("val/score/mean", step_metric=self.step_metric, summary="max")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._to_wandb(step):
            payload = {k: v for k, v in row.items() if k != "step"}
            payload.setdefault(self.step_metric, step)
            self._wandb.log(payload, step=step)

    def log_samples(self, rows: Sequence[dict[str, Any]], step: int, table: str = "samples",
                    views: Optional[Sequence[Any]] = None) -> None:
        """A table of sample responses with their rewards (``samples.jsonl`` + a W&B table).

        ``views``: one per row, the row's keyframe with the response's boxes / points and the GT
        boxes (:class:`rl.sample_views.SampleView`, an ``H x W x 3`` uint8 array, or None); W&B gets
        them as the table's first column, ``image``; ``samples.jsonl`` only the image path
        (``image``, relative to the run directory when inside it) of each view that has one."""
        if views is not None and len(views) != len(rows):
            raise ValueError(f"log_samples({table!r}): {len(rows)} rows but {len(views)} views")
        with self.samples_path.open("a") as f:
            for i, row in enumerate(rows):
                line = {"step": step, "table": table, **{k: _jsonable(v) for k, v in row.items()}}
                path = getattr(views[i], "image_path", None) if views is not None else None
                if path:
                    line.setdefault("image", self._relative(path))
                f.write(json.dumps(line) + "\n")
        if self._to_wandb(step) and rows:
            import wandb

            from rl.tracking_media import staging_in, table_images

            columns = list(rows[0].keys())
            data = [[_jsonable(r.get(c)) for c in columns] for r in rows]
            if views is not None:
                columns = ["image", *columns]
                data = [[image, *cells] for image, cells in zip(table_images(wandb, views), data)]
            with staging_in(self.wandb_dir, self.offline):
                self._wandb.log({table: wandb.Table(columns=columns, data=data)}, step=step)

    def _relative(self, path: str | Path) -> str:
        """``path`` relative to the run directory when it lies inside it (a run directory can move)."""
        try:
            return str(Path(path).resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(path)

    def log_overlays(self, name: str, overlays: Sequence[Any], step: int) -> list[Path]:
        """Evaluation overlays (:class:`rl.eval.overlays.Overlay`, one per expression).

        W&B: a list of ``wandb.Image`` under ``name``, each the keyframe (enlarged to >= 384 px on
        its short side) with ``prediction`` / ``ground_truth`` mask layers and a caption naming
        the video, expression, keyframe, query and J&F. Run directory: the same drawn into the
        pixels, ``images/<name>/step_<step>_<i>_<video>_<exp_id>.png`` (returned), with the
        captions in ``images/<name>/step_<step>.json``."""
        from rl.tracking_media import overlay_images, write_overlay_files

        paths = write_overlay_files(self.run_dir / "images" / name.replace("/", "_"), overlays, step)
        if self._to_wandb(step) and overlays:
            import wandb

            self._wandb.log({name: overlay_images(wandb, overlays)}, step=step)
        return paths

    def log_images(self, name: str, images: Sequence[Any], step: int, captions: Optional[Sequence[str]] = None) -> list[Path]:
        """Images (e.g. keyframes with overlaid masks), each an HxWx3 array (uint8, or float in [0, 1]).

        Written as PNGs to ``<run_dir>/images/<name>/step_<step>_<i>.png`` (returned) and
        logged to W&B as a list of ``wandb.Image`` under ``name``.
        """
        import numpy as np
        from PIL import Image

        captions = list(captions) if captions is not None else [""] * len(images)
        if len(captions) != len(images):
            raise ValueError(f"log_images({name!r}): {len(images)} images but {len(captions)} captions")
        arrays = []
        for i, image in enumerate(images):
            array = np.asarray(image)
            if array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"log_images({name!r}): image {i} has shape {array.shape}; expected HxWx3")
            if array.dtype != np.uint8:
                array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
            arrays.append(array)
        out_dir = self.run_dir / "images" / name.replace("/", "_")
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, array in enumerate(arrays):
            path = out_dir / f"step_{step:06d}_{i}.png"
            Image.fromarray(array).save(path)
            paths.append(path)
        if self._to_wandb(step) and arrays:
            import wandb

            self._wandb.log({name: [wandb.Image(a, caption=c or None) for a, c in zip(arrays, captions)]}, step=step)
        return paths

    @property
    def wandb_active(self) -> bool:
        """A W&B run is open (online or offline)."""
        return self._wandb is not None

    def log_table(self, name: str, columns: Sequence[str], data: Sequence[Sequence[Any]], step: int) -> None:
        """A W&B table (e.g. the end-of-training report, ``data``: rows of ``len(columns)`` cells); W&B only."""
        if self._to_wandb(step):
            import wandb

            from rl.tracking_media import staging_in

            rows = [[_jsonable(v) for v in row] for row in data]
            with staging_in(self.wandb_dir, self.offline):
                self._wandb.log({name: wandb.Table(columns=list(columns), data=rows)}, step=step)

    def log_image_file(self, name: str, path: str | Path, step: int) -> None:
        """An image file (e.g. ``curves.png``) as a ``wandb.Image``; W&B only."""
        if self._to_wandb(step):
            import wandb

            self._wandb.log({name: wandb.Image(str(path))}, step=step)

    def update_config(self, values: dict[str, Any]) -> None:
        """Add entries to the W&B run config (e.g. a sweep trial's parameter values)."""
        if self._wandb is not None:
            self._wandb.config.update(values, allow_val_change=True)

    def log_batch(self, record_ids: Sequence[str], step: int, kept_ids: Optional[Sequence[str]] = None) -> None:
        """The ids of the prompts a step drew (``batches.jsonl``: audits data order and resumes).

        With dynamic sampling ``record_ids`` covers every generation round of the step and
        ``kept_ids`` (written as ``"kept"``) the prompts of the groups it trained on."""
        row: dict[str, Any] = {"step": step, "ids": list(record_ids)}
        if kept_ids is not None:
            row["kept"] = list(kept_ids)
        with self.batches_path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def finish(self) -> None:
        if self._wandb is not None:
            offline = getattr(self._wandb.settings, "mode", "") == "offline"
            self._wandb.finish()
            self._wandb = None
            if offline:
                log.info("W&B run %s is offline; upload it later with `python -m launch.sync %s --upload` "
                         "(= wandb sync %s/wandb/offline-run-*)", self.run_id, self.wandb_dir, self.wandb_dir)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All rows of a run's ``metrics.jsonl`` (for tests and analysis)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
