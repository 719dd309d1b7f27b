"""A 2 x 2 grid over two reward parameters on a few-step quickstart, run by launch.sweep on local Ray:
four trials, two at a time, a ranking table, four W&B offline runs in one group carrying their values."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from launch.sync import find_offline_runs, read_offline_run
from tests.launch.conftest import REPO, python_env

pytestmark = pytest.mark.slow

IOU = "reward.params.visionreasoner.iou_threshold"
WACC = "reward.params.visionreasoner.weight_accuracy"
LIGHT = ["sft.max_steps=2", "trainer.total_steps=2", "trainer.val_freq=2", "trainer.val_before_train=false",
         "trainer.save_freq=2",
         "actor.use_kl_loss=false", "cluster.reward.num_workers=1"]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = best = 0
    for _, delta in events:
        running += delta
        best = max(best, running)
    return best


def test_reward_grid_runs_four_trials_two_at_a_time_and_ranks_them(tmp_path, private_tmp, processes):
    sweep_dir = tmp_path / "sweep"
    env = python_env(tmp_path, RAY_TMPDIR=str(private_tmp))
    proc = processes.start([sys.executable, "-m", "launch.sweep", "sweep=configs/sweeps/reward_grid.yaml",
                            f"sweep.dir={sweep_dir}", f"data.root={tmp_path / 'data'}", *LIGHT],
                           env, tmp_path / "sweep.log", cwd=REPO)
    try:
        proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("the sweep did not finish in 15 minutes:\n" + (tmp_path / "sweep.log").read_text()[-5000:])
    log = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0, log[-6000:]

    # Ranking table: printed and written, best first, every trial finished with its value.
    with (sweep_dir / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    grid = {(float(a), float(b)) for a, b in itertools.product([0.3, 0.5], [1.0, 2.0])}
    assert {(float(r[IOU]), float(r[WACC])) for r in rows} == grid
    assert all(r["status"] == "finished" and r["steps"] == "2" for r in rows), rows
    values = [float(r["val/score/mean"]) for r in rows]
    assert values == sorted(values, reverse=True)
    assert "rank" in log and rows[0]["trial"] in log and "results:" in log

    # Two trials ran at once, never more (max_concurrent_trials = 2).
    infos = [json.loads((Path(r["run_dir"]) / "trial.json").read_text()) for r in rows]
    assert _max_overlap([(i["started_at"], i["finished_at"]) for i in infos]) == 2

    # Four W&B offline runs in the sweep's group, each named after its values and carrying them.
    runs = [read_offline_run(f) for f in find_offline_runs(sweep_dir / "trials")]
    assert len(runs) == 4 and {r.group for r in runs} == {"reward_grid"}
    assert {r.run_id for r in runs} == {r["wandb_run_id"] for r in rows}
    seen = set()
    for run in runs:
        iou = run.config["reward"]["params"]["visionreasoner"]["iou_threshold"]
        wacc = run.config["reward"]["params"]["visionreasoner"]["weight_accuracy"]
        assert run.config["sweep_params"] == {IOU: iou, WACC: wacc}
        assert f"iou_threshold={iou:.4g}" in run.name and f"weight_accuracy={wacc:.4g}" in run.name
        assert "reward_grid" in run.tags and run.steps == [1, 2]
        seen.add((iou, wacc))
    assert seen == grid
