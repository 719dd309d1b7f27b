"""Does GRPO improve segmentation? The quickstart recipe over several seeds, then one table.

For each seed S, in turn (the quickstart: about 12 minutes each on 2 CPU cores; not part of ``make bench``)::

    python -m launch.train recipe=quickstart trainer.seed=S model.tiny.seed=S \\
        trainer.run_dir=runs/learning/seed_S trainer.experiment_name=learning_seed_S [overrides]

A seed is the whole run's randomness: the tiny model's random weights and tokenizer corpus
(``model.tiny.seed``), the CoT-SFT cold start's data order and the GRPO sampling
(``trainer.seed``); the synthetic data set stays the same. Each seed has its own run
directory, so it also makes its own cold start (``<run_dir>/sft``). An override of
``sft.output_dir`` or ``model.path`` makes the seeds share one starting policy. A run
directory with checkpoints resumes (its wall time then counts only the resumed part).

Then, from each run's ``metrics.jsonl`` (:mod:`rl.report`): val J&F and val accuracy at
the start (step 0) and end and the gain, training accuracy over the first / last 25 steps,
the final distinct-answer fraction and the wall time (``<run_dir>/learning.json``), one row
per seed, then the mean and the sample standard deviation over seeds::

    python benchmarks/learning.py --seeds 0 1 2 [key=value ...]
    python benchmarks/learning.py --seeds 0 1 2 --report-only      # only read existing run directories

``{seed}`` in an override stands for the seed, e.g. GRPO with LoRA from each seed's full cold start::

    python benchmarks/learning.py --root runs/learning_lora --seeds 0 1 2 actor.lora.rank=8 \
        'model.path=runs/learning/seed_{seed}/sft'
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path and its rewards.py would shadow the package.
sys.path.insert(0, str(REPO))
RESULT_FILE = "learning.json"
# (column, width): the per-seed table.
COLUMNS = (("seed", 6), ("J&F start", 10), ("J&F end", 9), ("J&F gain", 9), ("acc start", 10), ("acc end", 8),
           ("acc gain", 9), ("train first25", 14), ("train last25", 13), ("distinct ans", 13), ("wall s", 8))


def train_command(seed: int, root: Path, overrides: Sequence[str]) -> list[str]:
    """The launch.train command of one seed (``{seed}`` in an override becomes the seed)."""
    return [sys.executable, "-m", "launch.train", "recipe=quickstart", f"trainer.seed={seed}",
            f"model.tiny.seed={seed}", f"trainer.run_dir={root / f'seed_{seed}'}", f"trainer.experiment_name=learning_seed_{seed}",
            *(o.replace("{seed}", str(seed)) for o in overrides)]


def run_seed(seed: int, root: Path, overrides: Sequence[str]) -> int:
    """Train one seed (output streamed); its wall time and return code go to ``<run_dir>/learning.json``."""
    cmd = train_command(seed, root, overrides)
    print("running:", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    code = subprocess.run(cmd, cwd=REPO).returncode
    run_dir = root / f"seed_{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RESULT_FILE).write_text(json.dumps({"seed": seed, "wall_s": time.perf_counter() - start,
                                                   "returncode": code, "command": cmd[1:]}))
    return code


def seed_row(run_dir: Path) -> dict[str, Optional[float]]:
    """The table values of one run directory (None where the run has no such value)."""
    from rl.report import TRAIN_KEY, build_report
    from rl.tracking import read_metrics

    report = build_report(read_metrics(run_dir))
    jf, acc = report.row("val/J&F"), report.row("val/reward/accuracy")
    train = report.row(TRAIN_KEY)
    wall = None
    if (run_dir / RESULT_FILE).is_file():
        wall = json.loads((run_dir / RESULT_FILE).read_text()).get("wall_s")
    return {"J&F start": jf.start, "J&F end": jf.end, "J&F gain": jf.change,
            "acc start": acc.start, "acc end": acc.end, "acc gain": acc.change,
            "train first25": train.start, "train last25": train.end,
            "distinct ans": report.row("val/diversity/distinct_answer_frac").end, "wall s": wall}


def mean_std(values: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (ddof=1) of the values present; None when too few."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    mean = math.fsum(present) / len(present)
    if len(present) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in present) / (len(present) - 1))


def _cell(value: Optional[float], width: int) -> str:
    return f"{'-' if value is None else f'{value:.3f}':>{width}}"


def learning_table(rows: dict[int, dict[str, Optional[float]]]) -> str:
    """One line per seed, then ``mean`` and ``std`` over the seeds."""
    names = [name for name, _ in COLUMNS[1:]]
    lines = [" ".join(f"{name:>{width}}" for name, width in COLUMNS)]
    for seed, row in rows.items():
        lines.append(f"{seed:>{COLUMNS[0][1]}} " + " ".join(_cell(row[n], w) for n, (_, w) in zip(names, COLUMNS[1:])))
    stats = {n: mean_std([row[n] for row in rows.values()]) for n in names}
    for label, which in (("mean", 0), ("std", 1)):
        lines.append(f"{label:>{COLUMNS[0][1]}} " + " ".join(_cell(stats[n][which], w)
                                                           for n, (_, w) in zip(names, COLUMNS[1:])))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"], help="seeds (key=value overrides may follow)")
    parser.add_argument("--root", default="runs/learning", help="folder of the seed_<S> run directories")
    parser.add_argument("--report-only", action="store_true", help="no training: read the existing run directories")
    args, overrides = parser.parse_known_args(argv)
    # key=value overrides may stand anywhere, also right after the seeds ("--seeds 0 1 lr=...").
    overrides = [o for o in args.seeds if "=" in o] + overrides
    unknown = [o for o in overrides if "=" not in o] + [s for s in args.seeds if "=" not in s and not s.isdigit()]
    if unknown:
        parser.error(f"unknown arguments {unknown}; seeds are integers, overrides are key=value")
    args.seeds = [int(s) for s in args.seeds if "=" not in s]
    root = Path(args.root).resolve()
    failed = []
    if not args.report_only:
        failed = [s for s in args.seeds if run_seed(s, root, overrides) != 0]
    rows = {}
    for seed in args.seeds:
        run_dir = root / f"seed_{seed}"
        if not (run_dir / "metrics.jsonl").is_file():
            print(f"seed {seed}: no metrics in {run_dir}", file=sys.stderr)
            continue
        rows[seed] = seed_row(run_dir)
    if not rows:
        print("no run to report", file=sys.stderr)
        return 1
    print(f"\nGRPO on the quickstart recipe, {len(rows)} seed(s) ({root}); J&F x100 on held-out videos, "
          "acc = val/reward/accuracy, start = step-0 validation\n")
    print(learning_table(rows))
    if failed:
        print(f"\ntraining failed for seed(s) {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
