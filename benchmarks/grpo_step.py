"""GRPO step time vs the sum of its phase times: how much the Ray-future overlap saves.

Runs a short quickstart GRPO (tiny model, synthetic data, local Ray on CPU) in a temp
folder, then, per step, compares the measured wall-clock step time with the time a
strictly sequential loop would need: generation + encoding + reward (busy time of the
reward workers, per worker) + reference log-probs + old log-probs + advantages + update
+ weight sync. Reward scoring and both log-prob passes run concurrently in the driver.

    python benchmarks/grpo_step.py [--steps 8] [key=value overrides for launch.train]
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
    args, overrides = parser.parse_known_args()
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


if __name__ == "__main__":
    raise SystemExit(main())
