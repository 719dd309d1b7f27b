"""rl.report: the before/after table of a fabricated metrics.jsonl (values by hand), curves.png, W&B logging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.report import TRAIN_KEY, build_report, main, smooth, write_report


def _write_run(run_dir: Path) -> None:
    """Step 0 validation, 60 training steps (reward/accuracy = step / 100), validations at 30 and 60."""
    rows = [{"step": 0, "training/global_step": 0, "val/reward/accuracy": 0.2, "val/score/mean": 0.9,
             "val/J&F": 30.0, "val/J&F_stderr": 3.0, "val/referring/J&F": 32.0, "val/reasoning/J&F": 28.0,
             "val/diversity/distinct_answer_frac": 0.5, "val/response_length/mean": 40.0}]
    for step in range(1, 61):
        row = {"step": step, "reward/accuracy": step / 100, "reward/think_format": 1.0, "reward/failed": 0.0,
               "diversity/zero_variance_group_frac": 0.5, "diversity/valid_answer_frac": 0.9}
        if step == 30:
            row.update({"val/reward/accuracy": 0.3, "val/J&F": 35.0, "val/J&F_stderr": 4.5, "val/reasoning/J&F": 33.0,
                        "val/diagnostics/box_iou_before_segmentation": 0.25})
        if step == 60:
            row.update({"val/reward/accuracy": 0.5, "val/J&F": 45.0, "val/J&F_stderr": 4.0, "val/referring/J&F": 50.0,
                        "val/reasoning/J&F": "nan", "val/diversity/distinct_answer_frac": 0.25,
                        "val/response_length/mean": 20.0})
        rows.append(row)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_values_by_hand(tmp_path):
    _write_run(tmp_path)
    from rl.tracking import read_metrics

    report = build_report(read_metrics(tmp_path))
    assert (report.start_step, report.end_step, report.train_steps) == (0, 60, 60)
    acc = report.row("val/reward/accuracy")
    assert (acc.start, acc.end, acc.change) == (0.2, 0.5, pytest.approx(0.3))
    jf = report.row("val/J&F")
    assert (jf.start, jf.start_se, jf.end, jf.end_se) == (30.0, 3.0, 45.0, 4.0)
    assert jf.change == 15.0 and jf.change_se == pytest.approx(5.0)          # hypot(3, 4)
    # The reasoning split was NaN at step 60: its last finite value (step 30) is the end.
    assert report.row("val/reasoning/J&F").end == 33.0
    multi = report.row("val/multi_target/J&F")
    assert multi.start is None and multi.end is None and multi.change is None
    # Training accuracy: mean of steps 1..25 = 0.13, of steps 36..60 = 0.48.
    train = report.row(TRAIN_KEY)
    assert train.start == pytest.approx(0.13) and train.end == pytest.approx(0.48)
    md = report.markdown()
    assert "| val/J&F | 30.000 ± 3.000 | 45.000 ± 4.000 | +15.000 ± 5.000 |" in md
    assert "| val/multi_target/J&F | - | - | - |" in md
    assert "| val/diagnostics/box_iou_before_segmentation | - | 0.250 | - |" in md   # no step-0 value
    assert "| reward/accuracy (train, first / last 25 steps) | 0.130 | 0.480 | +0.350 |" in md
    assert "| val/diversity/distinct_answer_frac | 0.500 | 0.250 | -0.250 |" in md


def test_report_without_a_step_zero_validation_or_later_ones():
    report = build_report([{"step": 1, "reward/accuracy": 0.5}, {"step": 2, "reward/accuracy": 0.7}])
    assert report.start_step is None and report.end_step is None
    assert report.row("val/J&F").cells() == ["val/J&F", "-", "-", "-"]
    assert (report.row(TRAIN_KEY).start, report.row(TRAIN_KEY).end) == (0.6, 0.6)   # 2 steps < 25: same window
    val_only = build_report([{"step": 0, "val/J&F": 20.0}])
    assert val_only.start_step == 0 and val_only.row("val/J&F").cells() == ["val/J&F", "20.000", "-", "-"]


def test_smooth_is_a_trailing_mean():
    import numpy as np

    assert smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist() == [1.0, 2.0, 4.0, 6.0]
    assert smooth(np.array([1.0, 3.0]), 1).tolist() == [1.0, 3.0]


class _FakeTracker:
    def __init__(self):
        self.calls = []

    def log_table(self, name, columns, data, step):
        self.calls.append(("table", name, list(columns), [list(r) for r in data], step))

    def log_image_file(self, name, path, step):
        self.calls.append(("image", name, Path(path).name, step))


def test_write_report_files_and_tracker_calls(tmp_path, capsys):
    from PIL import Image

    _write_run(tmp_path)
    tracker = _FakeTracker()
    write_report(tmp_path, tracker=tracker, step=60)
    printed = capsys.readouterr().out
    assert "| val/J&F | 30.000 ± 3.000 |" in printed
    assert (tmp_path / "report.md").read_text() == printed.rstrip("\n") + "\n"
    png = tmp_path / "curves.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(png).size == (1200, 800)
    table, image = tracker.calls
    assert table[:3] == ("table", "report/table", ["metric", "start", "end", "change"]) and table[4] == 60
    assert table[3][1] == ["val/J&F", "30.000 ± 3.000", "45.000 ± 4.000", "+15.000 ± 5.000"]
    assert image == ("image", "report/curves", "curves.png", 60)


def test_cli(tmp_path, capsys):
    _write_run(tmp_path / "run")
    assert main([str(tmp_path / "run"), "--no-plot"]) == 0
    assert "wrote" in capsys.readouterr().out and not (tmp_path / "run" / "curves.png").exists()
    assert main([str(tmp_path / "missing")]) == 2


def test_wandb_gets_step_zero_first_and_the_report_at_the_last_step(tmp_path, monkeypatch):
    """A real offline W&B run: step 0 (the starting policy's validation), steps 1-2, then the report at
    step 2; read back from the transaction log, the steps are 0, 1, 2 once each, in order."""
    from rl.config import TrackingConfig
    from rl.tracking import Tracker
    from rl.wandb_offline import step_problems
    from tests.wandb_helpers import read_runs

    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = Tracker(tmp_path, TrackingConfig(wandb_mode="offline", project="p"), {}, default_name="t")
    assert tracker.wandb_active
    tracker.log({"val/J&F": 30.0, "val/J&F_stderr": 3.0, "training/global_step": 0}, 0)
    for step in (1, 2):
        tracker.log({"reward/accuracy": step / 10, "training/global_step": step}, step)
    tracker.log({"val/J&F": 45.0, "val/J&F_stderr": 4.0}, 2)
    write_report(tmp_path, tracker=tracker, step=2, echo=lambda _: None)
    tracker.finish()
    runs = read_runs(tmp_path, 1, lambda r: r.steps == [0, 1, 2]
                     and any(k.startswith("report/curves") for k in r.history[-1]))
    assert step_problems(runs) == []
    last = runs[0].history[-1]
    assert any(k.startswith("report/table") for k in last) and any(k.startswith("report/curves") for k in last)
