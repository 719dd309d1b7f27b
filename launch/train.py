"""GRPO training: ``python -m launch.train recipe=NAME [cluster=NAME] key=value ... [--dry-run [--allow-missing]]``.

With no argument it runs the ``quickstart`` recipe from the current folder: synthetic
data, tiny Qwen2.5-VL, CoT-SFT cold start (made or found), then GRPO on local Ray;
the run directory (``metrics.jsonl``, checkpoints, W&B offline files) is written under
``runs/quickstart``. Running the same command again after an interruption resumes
from the last checkpoint. The run itself is :func:`rl.run.run_training`.

A run directory belongs to one run: a config that is not a resume of the run in
``trainer.run_dir`` (or ``trainer.resume=never`` there) is refused with exit status 2;
``trainer.overwrite=true`` moves the old contents to a backup folder and starts anew
(docs/runs.md). Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves a checkpoint
and exits with 130 / 143.

Before anything starts, every input the run reads is checked on this machine (``model.path``
an HF folder with config.json and weights, ``data.root`` in the layout of ``data.format``,
``data.samples_path``, SAM2 / XMem checkpoints, the evaluation's checkpoints and data set;
:mod:`rl.preflight`): missing ones are one ``config error`` listing every key and path, exit
status 2. ``--dry-run`` prints the resolved config, the placement plan and these checks, and
starts nothing; with ``--allow-missing`` missing inputs are warnings (exit 0), for planning a
cluster run on a laptop.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from data.cli_help import ALLOW_MISSING_FLAG, DRY_RUN_FLAG, keyvalue_help, print_help, wants_help
from launch.common import ALLOW_MISSING, DRY_RUN, check_flags, config_from_argv, dry_run_inputs, setup_logging
from rl.config import Config, parse_cli, to_yaml

USAGE = "[recipe=NAME] [cluster=NAME] [profile=NAME] [key=value ...] [--dry-run [--allow-missing]]"

log = logging.getLogger("launch.train")


def dry_run(cfg: Config, allow_missing: bool = False) -> int:
    """Print the resolved config, the placement plan on the cluster the config describes and the
    pre-flight checks of the input files; start nothing.

    The plan is placed on simulated nodes (``cluster.nodes`` x ``devices_per_node`` GPUs,
    ``cpus_per_node`` CPUs, ``node_resources``) the way Ray's strategies would place it;
    a pool that does not fit is an error naming the pool (exit status 2). A missing input
    file is an error too (exit status 2), or a warning with ``allow_missing`` (exit 0).
    """
    from rl.config import ConfigError
    from rl.groups import build_placement
    from rl.placement import role_notes
    from rl.placement_sim import simulate

    print(to_yaml(cfg))
    try:
        plan = build_placement(cfg)   # the trainer's own plan (rl.groups imports no torch)
        print(plan.describe())
        print("\n".join(role_notes(cfg)))
        print(simulate(plan).format())
    except ConfigError as exc:
        print(f"placement error: {exc}", file=sys.stderr)
        return 2
    status = dry_run_inputs(cfg, allow_missing)
    print("dry run: nothing was started")
    return status


def format_validation(metrics: dict[str, float], step: int) -> str:
    """The metrics of a ``trainer.val_only`` run, one ``name: value`` line each, sorted by name."""
    if not metrics:
        return (f"validation at step {step}: nothing was validated (no held-out prompts, "
                "and no video evaluation: eval.freq = 0)")
    width = max(len(k) for k in metrics)
    lines = [f"validation at step {step}:"] + [f"  {k:<{width}}  {v:.6g}" for k, v in sorted(metrics.items())]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 2 bad arguments / config / run directory, 130 / 143 stopped by SIGINT /
    SIGTERM after checkpointing (re-running the same command resumes)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        return print_help(keyvalue_help("python -m launch.train", __doc__, USAGE, [DRY_RUN_FLAG, ALLOW_MISSING_FLAG]))
    problem = check_flags(parse_cli(argv)[1], (DRY_RUN, ALLOW_MISSING), "launch.train")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    setup_logging()
    cfg, flags = config_from_argv(argv)
    if DRY_RUN in flags:
        return dry_run(cfg, allow_missing=ALLOW_MISSING in flags)
    from rl.config import ConfigError
    from rl.run import run_training
    from rl.run_dir import RunDirError
    from rl.sft import NoSftTargets

    try:
        result = run_training(cfg)
    except NoSftTargets as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunDirError as exc:
        print(f"run directory error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # e.g. the cluster cannot hold the placement plan (checked when Ray starts)
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if result.interrupted:
        again = " without trainer.overwrite=true" if cfg.trainer.overwrite else ""
        print(f"interrupted at step {result.step}; re-run the same command{again} to resume "
              f"(run directory: {result.run_dir})")
    elif cfg.trainer.val_only:
        print(format_validation(result.metrics, result.step))
        print(f"run directory: {result.run_dir}")
    else:
        log.info("finished at step %d: %s", result.step,
                 {k: round(v, 4) for k, v in result.metrics.items() if k.startswith(("critic/score", "val/"))})
        print(f"run directory: {result.run_dir}")
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
