"""One sweep trial = one GRPO training run inside a Ray Tune trial.

The trial's config is the sweep's base (recipe, cluster, fixed overrides) plus
its swept values, with its own run directory ``<sweep>/trials/<trial name>``
and a W&B run in the sweep's group named after the trial (swept values in the
name and under ``sweep_params`` in the W&B config).

Resources: :meth:`TrialContext.resources` turns the trial's own placement plan
into a Tune ``PlacementGroupFactory`` (bundle 0 = the trial's driver, then every
pool's bundles), so Tune starts a trial only when the cluster can hold all of
it; inside the trial :func:`rl.placement.reserved_bundles` makes the trainer
place its workers in those bundles. The trial is :func:`rl.run.run_training` with two
callbacks: :class:`TrialRecorder` (W&B config, ``trial.json``) and :class:`TuneReporter`
(every step to Tune, which ASHA uses to stop weak trials early).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rl.config import Config, load_config
from rl.run import RunCallback
from rl.sweep.spec import SweepSpec, format_override

log = logging.getLogger(__name__)

TRIAL_FILE = "trial.json"


def trial_index(trial_id: str) -> int:
    """Tune trial ids end in a running number (``"5d0a1_00003"`` -> 3)."""
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Shortest dotted suffix of each key that is still unique (``a.b.iou`` -> ``iou``)."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if sum(1 for k in keys if k == suffix or k.endswith("." + suffix)) == 1:
                out[key] = suffix
                break
    return out


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return re.sub(r"[^A-Za-z0-9_.+-]", "", str(value).replace(" ", "")) or "x"


def trial_name(sweep: str, index: int, params: dict[str, Any]) -> str:
    """``<sweep>_<index>_<key>=<value>_...`` with short keys (a W&B run name and a folder name)."""
    shorts = short_keys(list(params))
    values = "_".join(f"{shorts[k]}={_fmt_value(v)}" for k, v in params.items())
    return f"{sweep}_{index:03d}" + (f"_{values}" if values else "")


@dataclass
class TrialContext:
    """What every trial of a sweep shares (pickled once by ``tune.with_parameters``)."""

    spec: SweepSpec
    # Absolute sweep directory (trials go to <sweep_dir>/trials/<name>).
    sweep_dir: str
    # Folder relative paths of the config are resolved against (the launcher's working folder;
    # Tune runs trials in their own folders).
    workdir: str
    # Extra overrides after the base (e.g. model.path of the shared SFT checkpoint).
    extra_overrides: list[str] = field(default_factory=list)

    # ----------------------------------------------------------- config
    def params_of(self, config: dict[str, Any]) -> dict[str, Any]:
        """The swept values of a Tune trial config, in parameter order."""
        return {p.key: config[p.key] for p in self.spec.parameters if p.key in config}

    def trial_config(self, config: dict[str, Any], name: str) -> Config:
        """The full run config of a trial (its own run_dir; W&B group = sweep name; name = trial name)."""
        params = self.params_of(config)
        base = self.spec.base_config(self.extra_overrides)
        tags = list(dict.fromkeys([*base.tracking.tags, "sweep", self.spec.name]))
        run_dir = Path(self.sweep_dir) / "trials" / name
        # Trials that change the synthetic data must not share (and race on) one data folder.
        own_data = [format_override("data.root", str(run_dir / "synthetic"))] if any(
            p.key.startswith("data.synthetic.") for p in self.spec.parameters) else []
        overrides = [
            *self.spec.base_overrides(), *self.extra_overrides, *self.spec.param_overrides(params), *own_data,
            format_override("trainer.run_dir", str(run_dir)),
            format_override("trainer.experiment_name", name),
            format_override("tracking.group", self.spec.name),
            format_override("tracking.name", name),
            format_override("tracking.tags", tags),
        ]
        return load_config(overrides)

    # -------------------------------------------------------- resources
    def placement(self, cfg: Config) -> tuple[list[dict[str, float]], Any, str]:
        """(bundles, reservation, strategy) of one trial's placement group."""
        from rl.groups import build_placement
        from rl.placement import trial_bundles, trial_strategy

        plan = build_placement(cfg)   # the trainer's own plan (rl.groups imports no torch)
        bundles, reservation = trial_bundles(plan, {"CPU": float(self.spec.trial_driver_cpus)})
        return bundles, reservation, trial_strategy(plan)

    def resources(self, config: dict[str, Any]) -> Any:
        """Tune ``PlacementGroupFactory`` sized by this trial's own placement plan."""
        from ray.tune import PlacementGroupFactory

        cfg = self.trial_config(config, "resources")
        bundles, _, strategy = self.placement(cfg)
        return PlacementGroupFactory(bundles, strategy=strategy)


class TuneReporter(RunCallback):
    """Run callback of a trial: ``tune.report`` every step.

    Keys the sweep ranks or schedules on are always present: a step without a
    fresh value (e.g. no validation that step) repeats the last one seen, or
    NaN before the first.
    """

    def __init__(self, required: Sequence[str]):
        self.required = [k for k in dict.fromkeys(required) if k]
        self.last: dict[str, float] = {}

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        from ray import tune

        tune.report(self.result(step, metrics))

    def result(self, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        row["step"] = step
        for key in self.required:
            if key in row and math.isfinite(row[key]):
                self.last[key] = row[key]
            row[key] = self.last.get(key, float("nan")) if key not in row else row[key]
        return row


class TrialRecorder(RunCallback):
    """Run callback of a trial: the sweep's values in the W&B config, the W&B run id in ``trial.json``."""

    def __init__(self, context: "TrialContext", name: str, params: dict[str, Any], info: dict[str, Any]):
        self.context, self.name, self.params, self.info = context, name, params, info

    def on_setup(self, trainer: Any) -> None:
        trainer.tracker.update_config({"sweep_name": self.context.spec.name, "sweep_trial": self.name,
                                       "sweep_params": self.params})
        self.info["wandb_run_id"] = trainer.tracker.run_id or ""
        write_trial_file(trainer.cfg.trainer.run_dir, self.info)


def write_trial_file(run_dir: str | Path, info: dict[str, Any]) -> Path:
    path = Path(run_dir) / TRIAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2, default=str))
    return path


def train_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Tune function trainable: one GRPO run (:func:`rl.run.run_training`) with the trial's values,
    placed in the trial's bundles."""
    from ray import tune
    from ray.util.placement_group import get_current_placement_group

    from rl.placement import reserved_bundles
    from rl.run import run_training
    from rl.run_setup import absolutize

    tctx = tune.get_context()
    name = tctx.get_trial_name() or f"{context.spec.name}_{trial_index(tctx.get_trial_id()):03d}"
    if Path(context.workdir).is_dir():
        os.chdir(context.workdir)  # this trial's own actor process
    cfg = absolutize(context.trial_config(config, name))
    params = context.params_of(config)
    info: dict[str, Any] = {"name": name, "trial_id": tctx.get_trial_id(), "sweep": context.spec.name,
                            "params": params, "run_dir": cfg.trainer.run_dir, "wandb_run_id": "",
                            "total_steps": cfg.trainer.total_steps, "started_at": time.time()}
    write_trial_file(cfg.trainer.run_dir, info)

    _, reservation, _ = context.placement(cfg)
    pg = get_current_placement_group()
    if pg is None:
        raise RuntimeError("train_trial must run inside a Ray Tune trial with a placement group")
    metric, _ = context.spec.scheduler_metric()
    callbacks = [TrialRecorder(context, name, params, info), TuneReporter([context.spec.metric, metric])]
    with reserved_bundles(dataclasses.replace(reservation, pg=pg)):
        try:
            run_training(cfg, callbacks=callbacks, report=False)
        finally:
            info["finished_at"] = time.time()
            write_trial_file(cfg.trainer.run_dir, info)
