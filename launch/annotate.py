"""Offline data jobs on Ray Data: ``python -m launch.annotate JOB key=value ... [--dry-run]``.

Jobs (``annotate.*`` keys, docs/offline_jobs.md):

  difficulty  an MLLM rates every sample 1-10 on five axes; D = the mean and its easy / medium /
              hard level are stored per sample (VideoSeg-R1's length budget reads D)
  cot         a teacher writes annotate.cot.k reasoning traces per KTG / AKS sample (optionally
              shown the ground-truth cues); each is scored with the task's reward and the best
              one passing annotate.cot.threshold is kept (``launch.sft sft.targets=teacher``)
  generate    n responses per sample from any checkpoint, scored by any registered reward;
              rows rescorable with ``python -m rewards.score``

Reads ``annotate.inputs`` (default: ``data.samples_path``; JSONL / parquet of ``data.build``), runs
``annotate.model_path`` (default ``model.path``; a tiny random model when both are empty) on the
``rollout.backend`` engine in a pool of Ray Data actors (``annotate.num_actors``, default
``cluster.rollout.num_workers``, each with that pool's CPUs / GPUs), and writes
``<annotate.output_dir>/<JOB>.jsonl`` (default output dir ``<trainer.run_dir>/annotate/<JOB>``),
``summary.json`` and ``failures.jsonl``. Work is saved shard by shard: rerunning the same command
after a crash or kill skips the finished shards. A folder holding output made with other settings
is refused. ``--dry-run`` prints the plan (records, shards done / to do, actors, model, output)
and starts nothing.

Exit status: 0 done (samples that failed or were skipped are counted in the summary), 1 no
sample could be annotated, 2 bad arguments / config / missing inputs / an output folder of other settings.
"""

from __future__ import annotations

import sys
from typing import Sequence

from data.annotate.config import JOB_NAMES
from data.cli_help import keyvalue_help, print_help, wants_help
from launch.common import DRY_RUN, check_flags, config_from_argv, setup_logging
from rl.config import parse_cli

__all__ = ["main"]

DRY_RUN_FLAG = (DRY_RUN, "print the resolved config and the plan (records, shards done / to do, actors, "
                         "output); start nothing")
USAGE = f"{{{'|'.join(JOB_NAMES)}}} [recipe=NAME] [cluster=NAME] [profile=NAME] [key=value ...] [{DRY_RUN}]"


def _usage_error(message: str) -> int:
    print(f"{message}\nusage: python -m launch.annotate {USAGE} (--help for more)", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        return print_help(keyvalue_help("python -m launch.annotate", __doc__, USAGE, [DRY_RUN_FLAG]))
    overrides, flags = parse_cli(argv)
    jobs = [f for f in flags if not f.startswith("-")]
    if len(jobs) != 1 or jobs[0] not in JOB_NAMES:
        return _usage_error(f"name one job ({', '.join(JOB_NAMES)}), got {jobs or 'none'}")
    job = jobs[0]
    problem = check_flags([f for f in flags if f != job], (DRY_RUN,), "launch.annotate")
    if problem:
        return _usage_error(problem)
    setup_logging()
    cfg, _ = config_from_argv(overrides, check_files=False)
    from data.annotate.runner import format_plan, format_summary, plan_job, run_job
    from data.annotate.shards import OutputConflict, check_manifest

    try:
        plan = plan_job(cfg, job)
        if cfg.annotate.model_path or cfg.model.path:
            from rl.models.loading import check_checkpoint_dir

            check_checkpoint_dir(plan.model_path, need_weights=True, need_processor=True)
        check_manifest(plan.output_dir, plan.settings, write=False)
    except (FileNotFoundError, ValueError, OutputConflict) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if DRY_RUN in flags:
        print(format_plan(plan))
        print("dry run: nothing was started")
        return 0
    summary = run_job(cfg, job)
    print(format_summary(summary))
    return 1 if summary["annotated"] and not summary["done"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
