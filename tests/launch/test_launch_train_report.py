"""launch.train around fit (trainer and Ray replaced by fakes): trainer.val_only prints the start
validation and exits 0; a training run ends with the before/after report in its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import launch.train as train


class _FakeTrainer:
    def __init__(self, cfg, policy, train_records, val_records):
        self.cfg, self.global_step, self.tracker = cfg, 0, None
        self.step_callbacks, self.interrupted, self.stop_signal = [], False, None

    def setup(self):
        pass

    def fit(self):
        run_dir = Path(self.cfg.trainer.run_dir)
        rows = [{"step": 0, "val/reward/accuracy": 0.25, "val/J&F": 20.0}]
        if self.cfg.trainer.val_only:
            (run_dir / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
            return {k: v for k, v in rows[0].items() if k != "step"}
        rows += [{"step": 1, "reward/accuracy": 0.5}, {"step": 2, "reward/accuracy": 0.7, "val/reward/accuracy": 0.75}]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.global_step = 2
        return {"critic/score/mean": 0.7}

    def shutdown(self):
        pass


@pytest.fixture()
def fake_run(monkeypatch):
    import rl.driver
    import rl.run

    monkeypatch.setattr(rl.driver, "GRPOTrainer", _FakeTrainer)
    monkeypatch.setattr(rl.run, "resolve_policy", lambda cfg, data=None: "policy")
    monkeypatch.setattr(rl.run, "dry_run", lambda reward_cfg, samples: None)
    monkeypatch.setattr(rl.run, "prepare_data", lambda cfg: SimpleNamespace(train=[], val=[]))
    monkeypatch.setattr(rl.run, "init_ray", lambda cfg: None)
    monkeypatch.setattr(rl.run, "shutdown_ray", lambda: None)
    monkeypatch.setattr(rl.run, "_ray_is_up", lambda: False)


def test_val_only_prints_the_metrics_and_exits_0(tmp_path, fake_run, capsys):
    assert train.main([f"trainer.run_dir={tmp_path}", "trainer.val_only=true"]) == 0
    out = capsys.readouterr().out
    assert "validation at step 0:" in out
    assert any(line.split() == ["val/J&F", "20"] for line in out.splitlines())
    assert any(line.split() == ["val/reward/accuracy", "0.25"] for line in out.splitlines())
    assert not (tmp_path / "report.md").exists()


def test_training_run_ends_with_the_report(tmp_path, fake_run, capsys):
    assert train.main([f"trainer.run_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "| val/reward/accuracy | 0.250 | 0.750 | +0.500 |" in out
    assert "| reward/accuracy (train, first / last 25 steps) | 0.600 | 0.600 | +0.000 |" in out
    assert (tmp_path / "report.md").is_file() and (tmp_path / "curves.png").stat().st_size > 0


def test_a_failing_report_is_logged_not_fatal(tmp_path, fake_run, monkeypatch, caplog):
    import rl.report

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rl.report, "write_report", broken)
    with caplog.at_level("ERROR", logger="rl.run"):
        assert train.main([f"trainer.run_dir={tmp_path}"]) == 0
    assert "end-of-training report failed" in caplog.text


def test_format_validation_when_nothing_ran():
    assert "nothing was validated" in train.format_validation({}, 0)
