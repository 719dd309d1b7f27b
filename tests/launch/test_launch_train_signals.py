"""``launch.train`` stopped by SIGINT / SIGTERM: the step in progress finishes, its checkpoint is
saved, and the process exits 130 / 143 saying where it stopped. The trainer's steps are scripted
(no Ray, no model) so the signal goes to a real ``launch.train`` process within seconds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# launch.train with the trainer's workers replaced: each step takes 0.3 s and logs a metric.
SCRIPT = '''
import sys, time
from pathlib import Path
from types import SimpleNamespace

import launch.train as train
import rl.driver
import rl.run
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.tracking import Tracker


class Actor:
    def save_checkpoint(self, path):
        Path(path).mkdir(parents=True)
        (Path(path) / "config.json").write_text("{}")

    def call_all(self, method, path):
        self.save_checkpoint(path)
        return [path]

    def shutdown(self):
        pass


class ScriptedTrainer(GRPOTrainer):
    def setup(self):
        self.groups = Groups(actor=Actor(), rollout=None, reward=None)
        self.tracker = Tracker(self.run_dir, self.cfg.tracking, {}, default_name="t")

    def train_step(self):
        (self.run_dir / "step_started").write_text(str(self.global_step))
        time.sleep(0.3)
        return {"critic/score/mean": float(self.global_step)}


rl.driver.GRPOTrainer = ScriptedTrainer
rl.run.resolve_policy = lambda cfg, data=None: "policy"
rl.run.dry_run = lambda reward_cfg, samples: None
rl.run.prepare_data = lambda cfg: SimpleNamespace(train=[{"id": f"r{i}"} for i in range(4)], val=[])
rl.run.init_ray = lambda cfg: None
rl.run.shutdown_ray = lambda: None
rl.run._ray_is_up = lambda: False
sys.exit(train.main(sys.argv[1:]))
'''


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_checkpoints_the_step_and_exits_with_128_plus_its_number(tmp_path, signum, code):
    script = tmp_path / "fake_train.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "run"
    args = [f"trainer.run_dir={run_dir}", "trainer.total_steps=1000", "trainer.save_freq=0",
            "trainer.train_batch_size=2", "actor.ppo_mini_batch_size=2", "trainer.export_hf=false",
            "trainer.val_before_train=false", "tracking.wandb_mode=disabled"]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "step_started").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "no step started within 120 s"
            time.sleep(0.1)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, out
    match = re.search(r"interrupted at step (\d+); re-run the same command to resume", out)
    assert match, out
    step = int(match.group(1))
    # The step in progress finished and was logged and checkpointed; no step after it ran.
    assert step >= 1 and [r["step"] for r in _rows(run_dir / "metrics.jsonl")] == list(range(1, step + 1))
    assert (run_dir / "checkpoints" / f"global_step_{step}" / "COMPLETE").is_file()
    assert not (run_dir / "report.md").exists()      # the report is for a finished run
