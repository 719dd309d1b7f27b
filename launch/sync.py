"""W&B offline runs: list them, check their steps, upload them later.

``python -m launch.sync runs/<name>`` lists the offline runs under a run (or
sweep) directory with their run id, group, name and logged steps, checks that
the processes of each run (one ``offline-run-*`` folder per start; a resumed run
reopens the same id) never log a step twice or go backwards, and prints the
``wandb sync`` commands that upload them. ``--upload`` runs those commands, in
start order per run id, so a resumed run is appended to its earlier part (needs
network access and ``WANDB_API_KEY``; the same as
``wandb sync runs/<name>/wandb/offline-run-*``).

The ``.wandb`` transaction logs are read with :mod:`rl.wandb_offline`.

Exit status: 0 listed (or uploaded); 2 the folder does not exist or is not a
folder; 1 no offline run under it, an offline run that cannot be read (named;
the others are still listed, and only those are uploaded), or a failed
``wandb sync``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from rl.wandb_offline import (OfflineRun, OfflineRunError, find_offline_runs, read_offline_run, read_records,
                              step_problems)

__all__ = ["OfflineRun", "OfflineRunError", "find_offline_runs", "read_offline_run", "read_records",
           "step_problems", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    from data.cli_help import doc_parser

    parser = doc_parser("python -m launch.sync", __doc__)
    parser.add_argument("root", help="run or sweep directory (searched for wandb/offline-run-*)")
    parser.add_argument("--upload", action="store_true", help="run `wandb sync` on every offline run, oldest first")
    args = parser.parse_args(argv)

    root = Path(args.root)
    if not root.exists():
        print(f"error: {root} does not exist (give a run or sweep directory)", file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"error: {root} is not a folder (give a run or sweep directory)", file=sys.stderr)
        return 2
    found = find_offline_runs(root)
    if not found:
        print(f"no W&B offline runs under {args.root}", file=sys.stderr)
        return 1
    runs, broken = [], 0
    for folder in found:
        try:
            runs.append(read_offline_run(folder))
        except (OfflineRunError, OSError) as exc:
            broken += 1
            print(f"error: cannot read offline run {folder}: {exc}", file=sys.stderr)
    folders = [run.path for run in runs]
    for run in runs:
        steps = run.steps
        span = f"steps {steps[0]}..{steps[-1]} ({len(steps)})" if steps else "no steps"
        print(f"{run.run_id}  group={run.group or '-'}  name={run.name or '-'}  {span}  {run.path}")
    problems = step_problems(runs)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    commands = [["wandb", "sync", str(f)] for f in folders]
    if not args.upload:
        if commands:
            print("upload later with:")
        for command in commands:
            print("  " + " ".join(command))
        return 1 if broken else 0
    for command in commands:
        result = subprocess.run(command, check=False)
        if result.returncode:
            print(f"`{' '.join(command)}` failed ({result.returncode})", file=sys.stderr)
            return result.returncode
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
