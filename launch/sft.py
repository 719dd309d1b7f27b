"""CoT-SFT cold start: ``python -m launch.sft recipe=NAME key=value ... [--force]``.

Builds (or finds) the training samples and the initial policy (``model.path``, or a
tiny Qwen2.5-VL built offline), fine-tunes it on the samples' reasoning+answer
targets (full, or LoRA with ``sft.lora.rank > 0``) and writes an HF checkpoint to
``sft.output_dir`` (default ``<trainer.run_dir>/sft``): the GRPO starting point.
The target of each sample is ``sft.targets``: ``template`` (the built ``sft_target``: templated
reasoning + the exact answer) or ``teacher`` (the trace kept by ``python -m launch.annotate cot``;
point ``sft.samples_path`` or ``data.samples_path`` at its output; see docs/offline_jobs.md).
An existing checkpoint is reused only when it was made with the same settings
(:mod:`rl.cold_start`); ``--force`` trains again. ``--dry-run`` prints the resolved
config and the input checks below and writes nothing (``--allow-missing``: missing inputs
are warnings, exit 0).

Before anything is written, ``model.path`` (when set: an HF folder with config.json and
weights) and the training data (``data.samples_path``, or ``data.root`` in the layout of
``data.format``; synthetic data are generated) are checked (:mod:`rl.preflight`): missing
ones are one ``config error`` listing every key and path, exit status 2.
"""

from __future__ import annotations

import sys
from typing import Sequence

from data.cli_help import ALLOW_MISSING_FLAG, keyvalue_help, print_help, wants_help
from launch.common import (ALLOW_MISSING, DRY_RUN, check_flags, config_from_argv, dry_run_inputs, save_resolved_config,
                           setup_logging, shutdown_ray)
from rl.cold_start import ensure_sft_checkpoint
from rl.sft import NoSftTargets
from rl.config import parse_cli

__all__ = ["ensure_sft_checkpoint", "main"]

FORCE = "--force"
FORCE_FLAG = (FORCE, "train again even when a complete checkpoint made with the same settings exists")
DRY_RUN_FLAG = (DRY_RUN, "print the resolved config and check the input files (model.path, the data); "
                         "write nothing; a missing input is exit status 2")
#: What the cold start reads: the initial policy and the training data (no reward models, no evaluation).
CHECKS = {"reward": False, "evaluation": False}


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 the checkpoint is ready (path printed), 2 bad arguments / config / missing inputs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        return print_help(keyvalue_help("python -m launch.sft", __doc__,
                                        "[recipe=NAME] [cluster=NAME] [profile=NAME] [key=value ...] [--force] "
                                        "[--dry-run [--allow-missing]]", [FORCE_FLAG, DRY_RUN_FLAG, ALLOW_MISSING_FLAG]))
    problem = check_flags(parse_cli(argv)[1], (FORCE, DRY_RUN, ALLOW_MISSING), "launch.sft")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    setup_logging()
    cfg, flags = config_from_argv(argv, **CHECKS)
    if DRY_RUN in flags:
        from rl.config import to_yaml

        print(to_yaml(cfg))
        status = dry_run_inputs(cfg, ALLOW_MISSING in flags, **CHECKS)
        print("dry run: nothing was started")
        return status
    save_resolved_config(cfg, "sft_config.yaml")
    try:
        path = ensure_sft_checkpoint(cfg, force=FORCE in flags)
    except NoSftTargets as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown_ray()
    print(f"SFT checkpoint: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
