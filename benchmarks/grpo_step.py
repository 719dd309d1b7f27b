"""GRPO step time vs the sum of its phase times: how much the Ray-future overlap saves.

Runs a short quickstart GRPO (tiny model, synthetic data, local Ray on CPU) in a temp
folder, then, per step, compares the measured wall-clock step time with the time a
strictly sequential loop would need: generation + encoding + reward (busy time of the
reward workers, per worker) + reference log-probs + old log-probs + advantages + update
+ weight sync. Reward scoring and both log-prob passes run concurrently in the driver.

    python benchmarks/grpo_step.py [--steps 8] [key=value overrides for launch.train]
    python benchmarks/grpo_step.py --bypass [--steps 8]   # step time with vs without the old-log-prob pass
    python benchmarks/grpo_step.py --mode async [--seeds 0 1 2] [--steps 12]   # one-step off-policy vs sync
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SEQUENTIAL = ["timing_busy_s/gen", "timing_s/encode", "timing_busy_s/reward", "timing_busy_s/ref",
              "timing_busy_s/old_log_prob", "timing_s/adv", "timing_s/update_actor", "timing_s/update_weights"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the temp run folder")
    parser.add_argument("--bypass", action="store_true", help="compare algorithm.rollout_correction.bypass_mode="
                        "true (no old-log-prob pass) with the default, side by side")
    parser.add_argument("--mode", choices=("overlap", "async"), default="overlap", help="async: one-step "
                        "off-policy generation vs the synchronous loop, per seed (benchmarks/grpo_async.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="--mode async: seeds to run")
    args, overrides = parser.parse_known_args()
    if args.mode == "async":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from grpo_async import compare

        return compare(args.seeds, args.steps, overrides, args.keep)
    if args.bypass:
        return bypass_comparison(args.steps, overrides, args.keep)
    work = Path(tempfile.mkdtemp(prefix="bench_grpo_"))
    cmd = [sys.executable, "-m", "launch.train", "recipe=quickstart", "data.root=data",
           "data.synthetic.num_videos=16", "sft.max_steps=20", f"trainer.total_steps={args.steps}",
           "trainer.save_freq=0", "trainer.val_freq=0", "trainer.val_before_train=false", "trainer.log_samples_freq=0",
           "trainer.export_hf=false", "tracking.wandb_mode=disabled", "trainer.run_dir=run", *overrides]
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    print("running:", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return proc.returncode
    rows = [json.loads(l) for l in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = rows[1:] if len(rows) > 2 else rows          # the first step includes warm-up
    print(f"\n{'step':>4} {'step_s':>8} {'sequential_s':>13} {'saved_s':>8} {'ratio':>6}")
    total_step = total_seq = 0.0
    for r in rows:
        seq = sum(r.get(k, 0.0) for k in SEQUENTIAL)
        total_step += r["timing_s/step"]
        total_seq += seq
        print(f"{r['step']:>4} {r['timing_s/step']:>8.2f} {seq:>13.2f} {seq - r['timing_s/step']:>8.2f} "
              f"{seq / r['timing_s/step']:>6.2f}")
    print(f"\nmean step {total_step / len(rows):.2f}s vs sequential sum {total_seq / len(rows):.2f}s: "
          f"overlap saves {100 * (1 - total_step / total_seq):.1f}% (ratio {total_seq / total_step:.2f}x)")
    print("phase means:", {k.split("/", 1)[1]: round(sum(r.get(k, 0) for r in rows) / len(rows), 3)
                           for k in SEQUENTIAL})
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def bypass_comparison(steps: int, overrides: list[str], keep: bool) -> int:
    """Quickstart runs in one folder (same data, seed and settings), with and without
    ``algorithm.rollout_correction.bypass_mode=true`` (the rollout's log-probs stand in for the
    old ones, so the actor's old-log-prob pass is skipped), in the order default, bypass, bypass,
    default so that drift in the machine's load falls on both alike. Prints the median step and
    phase times of each setting over all its runs' steps (the first step of a run excluded as
    warm-up) and the ratio bypass / default of the median step time last."""
    import shutil
    import statistics

    work = Path(tempfile.mkdtemp(prefix="bench_bypass_"))
    env = dict(os.environ, RAY_TMPDIR=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    rows: dict[str, list[dict]] = {"default": [], "bypass": []}
    keys = ["timing_s/step", "timing_s/gen", "timing_s/old_log_prob", "timing_s/ref", "timing_s/update_actor"]
    for run, name in enumerate(("default", "bypass", "bypass", "default")):
        extra = ["algorithm.rollout_correction.bypass_mode=true"] if name == "bypass" else []
        cmd = [sys.executable, "-m", "launch.train", "recipe=quickstart", "data.root=data",
               "data.synthetic.num_videos=16", "sft.max_steps=20", f"trainer.total_steps={steps}",
               "trainer.save_freq=0", "trainer.val_freq=0", "trainer.val_before_train=false",
               "trainer.log_samples_freq=0", "trainer.export_hf=false", "tracking.wandb_mode=disabled",
               f"trainer.run_dir=run_{run}_{name}", *overrides, *extra]
        if run > 0:   # one cold start for all runs
            cmd.append(f"model.path={work / 'run_0_default' / 'sft'}")
        print("running:", " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return proc.returncode
        lines = (work / f"run_{run}_{name}" / "metrics.jsonl").read_text().splitlines()
        rows[name] += [r for r in map(json.loads, lines) if "timing_s/step" in r][1:]   # first step: warm-up
    medians = {name: {k: statistics.median(r.get(k, 0.0) for r in rs) for k in keys} for name, rs in rows.items()}
    for name, rs in rows.items():
        medians[name]["critic/score/mean"] = statistics.mean(r["critic/score/mean"] for r in rs)
    print(f"\nmedians over {len(rows['default'])} steps each ({steps - 1} per run, 2 runs per setting)")
    print(f"{'run':>8} " + " ".join(f"{k.split('/', 1)[1]:>15}" for k in medians["default"]))
    for name, row in medians.items():
        print(f"{name:>8} " + " ".join(f"{v:>15.3f}" for v in row.values()))
    ratio = medians["bypass"]["timing_s/step"] / medians["default"]["timing_s/step"]
    print(f"\nmedian step {medians['bypass']['timing_s/step']:.2f}s with bypass vs "
          f"{medians['default']['timing_s/step']:.2f}s with the old-log-prob pass: ratio {ratio:.2f}x")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
