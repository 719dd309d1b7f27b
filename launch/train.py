"""GRPO training: ``python -m launch.train recipe=NAME [cluster=NAME] key=value ... [--dry-run]``.

With no argument it runs the ``quickstart`` recipe from the current folder: synthetic
data, tiny Qwen2.5-VL, CoT-SFT cold start (made or found), then GRPO on local Ray;
the run directory (``metrics.jsonl``, checkpoints, W&B offline files) is written under
``runs/quickstart``. Running the same command again after an interruption resumes
from the last checkpoint.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from launch.common import (config_from_argv, init_ray, prepare_data, save_resolved_config, setup_logging,
                           shutdown_ray)
from rl.config import Config, to_yaml

log = logging.getLogger("launch.train")


def resolve_policy(cfg: Config) -> str:
    """``model.path`` when given, else this run's SFT checkpoint (trained if missing)."""
    if cfg.model.path:
        if not Path(cfg.model.path).exists():
            raise FileNotFoundError(f"model.path does not exist: {cfg.model.path}")
        return cfg.model.path
    from launch.sft import ensure_sft_checkpoint

    return str(ensure_sft_checkpoint(cfg))


def dry_run(cfg: Config) -> int:
    """Print the resolved config and the placement plan on the cluster the config describes; start nothing.

    The plan is placed on simulated nodes (``cluster.nodes`` x ``devices_per_node`` GPUs,
    ``cpus_per_node`` CPUs, ``node_resources``) the way Ray's strategies would place it;
    a pool that does not fit is an error naming the pool (exit status 2).
    """
    from rl.config import ConfigError
    from rl.placement import PlacementPlan, roles_for
    from rl.placement_sim import simulate

    print(to_yaml(cfg))
    try:
        plan = PlacementPlan(cfg.cluster, roles_for(cfg))  # = rl.driver.build_placement, without importing torch
        print(plan.describe())
        if "evaluator" not in plan.slots:
            print("  evaluator: not placed (eval.freq = 0)")
        print(simulate(plan).format())
    except ConfigError as exc:
        print(f"placement error: {exc}", file=sys.stderr)
        return 2
    print("dry run: nothing was started")
    return 0


def format_validation(metrics: dict[str, float], step: int) -> str:
    """The metrics of a ``trainer.val_only`` run, one ``name: value`` line each, sorted by name."""
    if not metrics:
        return (f"validation at step {step}: nothing was validated (no held-out prompts, "
                "and no video evaluation: eval.freq = 0)")
    width = max(len(k) for k in metrics)
    lines = [f"validation at step {step}:"] + [f"  {k:<{width}}  {v:.6g}" for k, v in sorted(metrics.items())]
    return "\n".join(lines)


def write_final_report(cfg: Config, trainer) -> None:
    """The before/after report of the run (:mod:`rl.report`: printed, ``report.md``, ``curves.png``, W&B).
    A report error is logged, never fatal: the training itself is done."""
    from rl.report import write_report

    try:
        write_report(cfg.trainer.run_dir, tracker=trainer.tracker, step=trainer.global_step)
    except Exception:  # noqa: BLE001 - the run and its checkpoints are complete either way
        log.exception("the end-of-training report failed (python -m rl.report %s re-creates it)", cfg.trainer.run_dir)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    cfg, flags = config_from_argv(list(sys.argv[1:] if argv is None else argv))
    if "--dry-run" in flags:
        return dry_run(cfg)
    unknown = [f for f in flags if f != "--dry-run"]
    if unknown:
        print(f"unknown argument(s): {unknown}; use key=value overrides or --dry-run", file=sys.stderr)
        return 2
    save_resolved_config(cfg)
    from rl.driver import GRPOTrainer

    trainer = None
    try:
        policy = resolve_policy(cfg)
        data = prepare_data(cfg)
        init_ray(cfg)
        trainer = GRPOTrainer(cfg, policy, data.train, data.val)
        trainer.setup()
        last = trainer.fit()
        if cfg.trainer.val_only:
            print(format_validation(last, trainer.global_step))
        else:
            log.info("finished at step %d: %s", trainer.global_step,
                     {k: round(v, 4) for k, v in last.items() if k.startswith(("critic/score", "val/"))})
            write_final_report(cfg, trainer)
        print(f"run directory: {cfg.trainer.run_dir}")
    finally:
        if trainer is not None:
            trainer.shutdown()
        shutdown_ray()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
