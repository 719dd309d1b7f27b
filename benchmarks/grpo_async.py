"""One-step off-policy generation vs the synchronous GRPO loop (``grpo_step.py --mode async``).

For each seed, two short quickstart runs side by side from the same cold start (the synchronous
run trains it, the off-policy run reuses it): ``trainer.off_policy_steps=0`` and ``=1``. Prints
per run the mean step time over steps 3.. (step 1 includes warm-up, and step 1 of the off-policy
run has nothing to overlap) and the mean ``critic/score/mean`` over all steps, then the score
difference against the synchronous scores' seed-to-seed spread and, last, the async/sync ratio
of the mean step time (target <= 0.75).

    python benchmarks/grpo_step.py --mode async [--seeds 0 1 2] [--steps 12] [key=value ...]

The default cold start (20 SFT steps) answers every prompt alike, so the scores say little; from
the quickstart's own cold starts (``{seed}`` in an override stands for the seed)::

    python benchmarks/grpo_step.py --mode async --seeds 0 1 2 --steps 12 'model.path=$PWD/runs/learning/seed_{seed}/sft'
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STALENESS = "training/off_policy/trajectory_staleness/mean"


def _train(work: Path, run: str, steps: int, overrides: list[str]) -> list[dict]:
    """One quickstart GRPO run in ``work/run``: its step rows of metrics.jsonl ([] on failure, printed)."""
    cmd = [sys.executable, "-m", "launch.train", "recipe=quickstart", "data.root=data",
           "data.synthetic.num_videos=16", "sft.max_steps=20", f"trainer.total_steps={steps}",
           "trainer.save_freq=0", "trainer.val_freq=0", "trainer.val_before_train=false", "trainer.log_samples_freq=0",
           "trainer.export_hf=false", "tracking.wandb_mode=disabled", f"trainer.run_dir={run}", *overrides]
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    print("running:", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return []
    rows = [json.loads(line) for line in (work / run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "timing_s/step" in r]


def compare(seeds: list[int], steps: int, overrides: list[str], keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench_async_"))
    results: dict[str, list[tuple[float, float]]] = {"sync": [], "async": []}
    try:
        for seed in seeds:
            for mode in ("sync", "async"):
                extra = [f"trainer.seed={seed}", f"model.tiny.seed={seed}",
                         f"trainer.off_policy_steps={int(mode == 'async')}"]
                if mode == "async":      # the same starting policy as the sync run of this seed
                    extra.append(f"model.path={work / f'sync_{seed}' / 'sft'}")
                rows = _train(work, f"{mode}_{seed}", steps, [*extra, *(o.replace("{seed}", str(seed)) for o in overrides)])
                if len(rows) < 3:
                    return 1
                timed = rows[2:]
                results[mode].append((statistics.mean(r["timing_s/step"] for r in timed),
                                      statistics.mean(r["critic/score/mean"] for r in rows)))
                stale = f", staleness per step {[r.get(STALENESS) for r in rows]}" if mode == "async" else ""
                print(f"seed {seed} {mode:>5}: mean step {results[mode][-1][0]:.2f}s, "
                      f"mean score {results[mode][-1][1]:.3f}{stale}", flush=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    sync_t, async_t = (statistics.mean(t for t, _ in results[m]) for m in ("sync", "async"))
    sync_s, async_s = ([s for _, s in results[m]] for m in ("sync", "async"))
    spread = statistics.stdev(sync_s) if len(sync_s) > 1 else float("nan")
    print(f"\ncritic/score/mean over {steps} steps: sync {statistics.mean(sync_s):.3f} (seed-to-seed std "
          f"{spread:.3f}), async {statistics.mean(async_s):.3f}: async - sync = "
          f"{statistics.mean(async_s) - statistics.mean(sync_s):+.3f}")
    print(f"mean step time (steps 3..{steps}, {len(seeds)} seed(s)): sync {sync_t:.2f}s, async {async_t:.2f}s: "
          f"async/sync ratio {async_t / sync_t:.2f}")
    return 0
