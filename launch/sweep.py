"""Reward / hyper-parameter sweeps: ``python -m launch.sweep sweep=configs/sweeps/NAME.yaml [key=value ...]``.

Expands the sweep file (grid, random, or Bayesian search over any config keys),
then runs every trial as a GRPO training run with Ray Tune: each trial holds a
placement group sized by its own placement plan, up to ``max_concurrent_trials``
at once, optionally stopped early by ASHA. Writes under ``runs/sweeps/<name>/``
(``sweep.dir``)::

    sweep.yaml           the resolved sweep
    base/                shared data + SFT cold start (share_sft)
    trials/<trial>/      each trial's run dir (metrics.jsonl, checkpoints, wandb/, trial.json)
    tune/                Ray Tune's experiment state
    results.csv          trials ranked by the sweep's metric (also printed)

Items: ``sweep.<field>=v`` changes a sweep field (``sweep.max_concurrent_trials=2``),
``recipe=``/``cluster=`` the trials' files, any other ``key=value`` is a fixed
override of every trial. ``--dry-run`` prints the trials and their resources, checks the
input files of the trials' config (:mod:`rl.preflight`: ``model.path``, ``data.root``,
checkpoints; a missing one is exit status 2, a warning with ``--allow-missing``) and starts
nothing. A sweep run checks the same files before it writes anything or starts Ray. Every
trial is a W&B run in group ``<name>``, named after its values.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from data.cli_help import ALLOW_MISSING_FLAG, keyvalue_help, print_help, wants_help
from launch.common import (ALLOW_MISSING, DRY_RUN, absolutize, check_flags, config_from_argv, dry_run_inputs,
                           init_ray, launch_config, prepare_data, setup_logging, shutdown_ray)
from rl.config import ConfigError
from rl.sweep.spec import SweepSpec, format_override, load_sweep

log = logging.getLogger("launch.sweep")

USAGE = "sweep=configs/sweeps/NAME.yaml|NAME [sweep.<field>=v ...] [key=value ...] [--dry-run [--allow-missing]]"
DRY_RUN_FLAG = (DRY_RUN, "print the trials, the resources each one holds and the input-file checks; start nothing")


def _parse(argv: Sequence[str]) -> tuple[str, list[str], list[str]]:
    path = ""
    items: list[str] = []
    flags: list[str] = []
    for arg in argv:
        if arg.startswith("--"):
            flags.append(arg)
        elif arg.startswith("sweep="):
            path = arg.split("=", 1)[1]
        else:
            items.append(arg)
    return path, items, flags


def describe(spec: SweepSpec) -> str:
    """The trials a sweep will run and the resources each one holds."""
    from rl.sweep.trial import TrialContext, trial_name

    context = TrialContext(spec, str(spec.sweep_dir.resolve()), str(Path.cwd()))
    lines = [f"sweep {spec.name!r}: recipe={spec.recipe} cluster={spec.cluster or '(recipe default)'} "
             f"search={spec.search} trials={spec.num_trials()} max_concurrent_trials={spec.max_concurrent_trials}",
             f"  rank by {spec.metric} ({spec.scope} value, {spec.mode})",
             f"  dir {spec.sweep_dir}"]
    if spec.scheduler.type != "none":
        metric, mode = spec.scheduler_metric()
        lines.append(f"  early stopping: {spec.scheduler.type} on {metric} ({mode}), grace {spec.scheduler.grace_period} "
                     f"steps, reduction factor {spec.scheduler.reduction_factor:g}")
    lines.append("  parameters:")
    for p in spec.parameters:
        what = f"values {p.values}" if p.values is not None else f"{p.distribution}({p.min}, {p.max})"
        lines.append(f"    {p.key}: {what}")
    if spec.overrides:
        lines.append("  fixed overrides: " + " ".join(format_override(k, v) for k, v in spec.overrides.items()))
    points = spec.grid()
    lines.append("  trials:" if spec.search == "grid" else "  example trials (values drawn at run time):")
    for i, values in enumerate(points[: 20] if spec.search == "grid" else points[:1]):
        lines.append(f"    {trial_name(spec.name, i, values)}")
    cfg = context.trial_config(points[0], "dry-run")
    bundles, _, strategy = context.placement(cfg)
    cpus = sum(b.get("CPU", 0.0) for b in bundles)
    gpus = sum(b.get("GPU", 0.0) for b in bundles)
    lines.append(f"  each trial holds one placement group ({strategy}) of {len(bundles)} bundles: "
                 f"CPU {cpus:g}, GPU {gpus:g} (driver bundle {bundles[0]})")
    num_cpus = spec.num_cpus or cfg.cluster.num_cpus
    if num_cpus and not cfg.cluster.address:
        fit = int(num_cpus // cpus) if cpus else spec.max_concurrent_trials
        lines.append(f"  local Ray with {num_cpus} CPUs holds {fit} trial(s) at once "
                     f"(running {min(fit, spec.max_concurrent_trials)} concurrently)")
    return "\n".join(lines)


def prepare_shared(spec: SweepSpec, sweep_dir: Path) -> list[str]:
    """Data (and the SFT cold start, with ``share_sft``) made once in ``<sweep_dir>/base`` before the trials.

    Returns extra overrides for every trial (``model.path`` of the shared checkpoint).
    """
    from launch.common import absolutize
    from launch.sft import ensure_sft_checkpoint

    base = absolutize(spec.base_config([format_override("trainer.run_dir", str(sweep_dir / "base"))]))
    if spec.share_sft and not base.model.path:
        path = ensure_sft_checkpoint(base)
        return [format_override("model.path", str(path))]
    prepare_data(base)  # generates the synthetic data set once, so trials only read it
    return []


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 at least one trial finished (or a dry run found no problem), 1 every trial
    failed, 2 bad arguments / sweep file / config / missing inputs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        return print_help(keyvalue_help("python -m launch.sweep", __doc__, USAGE, [DRY_RUN_FLAG, ALLOW_MISSING_FLAG],
                                        groups=("sweep", "recipe", "cluster", "profile")))
    setup_logging()
    path, items, flags = _parse(argv)
    problem = check_flags(flags, (DRY_RUN, ALLOW_MISSING), "launch.sweep")
    if not path or problem:
        print(f"usage: python -m launch.sweep {USAGE}" + (f"\n{problem}" if problem else ""), file=sys.stderr)
        return 2
    try:
        spec = load_sweep(path, items)
    except ConfigError as exc:
        print(f"sweep error: {exc}", file=sys.stderr)
        return 2
    if DRY_RUN in flags:
        try:
            print(describe(spec))
            base = absolutize(launch_config(spec.base_overrides(), default_recipe=None))
        except ConfigError as exc:
            print(f"sweep error: {exc}", file=sys.stderr)
            return 2
        status = dry_run_inputs(base, ALLOW_MISSING in flags)
        print("dry run: nothing was started")
        return status
    return run(spec)


def run(spec: SweepSpec) -> int:
    """Prepare, run every trial with Ray Tune, rank the results; 0 when at least one trial finished."""
    from rl.sweep.results import format_table, rank, trial_result, write_csv
    from rl.sweep.runner import run_sweep, tune_errors
    from rl.sweep.trial import TrialContext

    sweep_dir = spec.sweep_dir.resolve()
    base_cfg, _ = config_from_argv(spec.base_overrides(), default_recipe=None)  # exit 2 on a missing input
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(dataclasses.asdict(spec))))
    print(describe(spec))
    if spec.num_cpus:
        base_cfg.cluster.num_cpus = spec.num_cpus
    try:
        init_ray(base_cfg, check_placement=False)  # each trial's own plan is Tune's placement group
        context = TrialContext(spec, str(sweep_dir), str(Path.cwd()), prepare_shared(spec, sweep_dir))
        results = run_sweep(context, base_cfg.trainer.total_steps)
        errors = tune_errors(results)
    finally:
        shutdown_ray()
    trial_dirs = sorted(p.parent for p in (sweep_dir / "trials").glob("*/trial.json"))
    table = rank([trial_result(d, spec, errors.get(d.name, "")) for d in trial_dirs], spec.mode)
    csv_path = write_csv(table, sweep_dir / "results.csv", spec)
    print(format_table(table, spec))
    print(f"results: {csv_path}")
    print(f"W&B: group {spec.name!r}; offline runs upload with `python -m launch.sync {sweep_dir}` "
          f"(or `wandb sync {sweep_dir}/trials/*/wandb/offline-run-*`)")
    return 0 if any(r.status != "error" for r in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
