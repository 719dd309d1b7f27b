"""benchmarks/learning.py: the per-seed table and its mean / std, on fabricated run directories."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("learning_benchmark", REPO / "benchmarks" / "learning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(run_dir: Path, jf0: float, jf1: float, acc0: float, acc1: float, wall: float | None) -> None:
    """A step-0 validation, 50 steps of training accuracy (0.1 for steps 1-25, 0.3 for 26-50), a final validation."""
    rows = [{"step": 0, "val/J&F": jf0, "val/reward/accuracy": acc0, "val/diversity/distinct_answer_frac": 1.0}]
    rows += [{"step": s, "reward/accuracy": 0.1 if s <= 25 else 0.3} for s in range(1, 51)]
    rows[-1].update({"val/J&F": jf1, "val/reward/accuracy": acc1, "val/diversity/distinct_answer_frac": 0.5})
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if wall is not None:
        (run_dir / "learning.json").write_text(json.dumps({"seed": 0, "wall_s": wall, "returncode": 0}))


def test_report_only_table_per_seed_mean_and_std(tmp_path, capsys):
    bench = _load()
    _fake_run(tmp_path / "seed_0", 20.0, 30.0, 0.2, 0.4, 100.0)
    _fake_run(tmp_path / "seed_1", 22.0, 26.0, 0.3, 0.3, 200.0)
    _fake_run(tmp_path / "seed_2", 18.0, 26.0, 0.1, 0.5, None)     # no wall time recorded
    row = bench.seed_row(tmp_path / "seed_0")
    assert row["J&F gain"] == 10.0 and row["acc gain"] == pytest.approx(0.2)
    assert row["train first25"] == pytest.approx(0.1) and row["train last25"] == pytest.approx(0.3)
    assert row["distinct ans"] == 0.5 and row["wall s"] == 100.0

    assert bench.main(["--seeds", "0", "1", "2", "--report-only", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines if line.split() and line.split()[0] in
             ("0", "1", "2", "mean", "std")}
    assert table["0"] == ["20.000", "30.000", "10.000", "0.200", "0.400", "0.200", "0.100", "0.300", "0.500", "100.000"]
    assert table["2"][-1] == "-"
    # J&F gains 10, 4, 8: mean 22/3, sample std sqrt(((8/3)^2 + (10/3)^2 + (2/3)^2) / 2) = sqrt(28/3)
    assert float(table["mean"][2]) == pytest.approx(22 / 3, abs=5e-4)
    assert float(table["std"][2]) == pytest.approx(math.sqrt(28 / 3), abs=5e-4)
    # Wall time: mean and std over the two seeds that have one.
    assert table["mean"][-1] == "150.000" and float(table["std"][-1]) == pytest.approx(math.sqrt(5000), abs=5e-4)


def test_train_command_gives_each_seed_its_own_run_dir_and_seed(tmp_path):
    bench = _load()
    cmd = bench.train_command(3, tmp_path, ["trainer.total_steps=10"])
    assert cmd[1:] == ["-m", "launch.train", "recipe=quickstart", "trainer.seed=3", "model.tiny.seed=3",
                       f"trainer.run_dir={tmp_path / 'seed_3'}", "trainer.experiment_name=learning_seed_3",
                       "trainer.total_steps=10"]


def test_mean_std_edge_cases_and_missing_runs(tmp_path, capsys):
    bench = _load()
    assert bench.mean_std([]) == (None, None) and bench.mean_std([None, 2.0]) == (2.0, None)
    assert bench.main(["--seeds", "7", "--report-only", "--root", str(tmp_path)]) == 1
    assert "no metrics" in capsys.readouterr().err


def test_overrides_may_follow_the_seeds(tmp_path, monkeypatch):
    bench = _load()
    calls = []
    monkeypatch.setattr(bench, "run_seed", lambda seed, root, overrides: calls.append((seed, list(overrides))) or 0)
    bench.main(["--seeds", "1", "2", "actor.optim.lr=1e-4", "--root", str(tmp_path), "trainer.total_steps=5"])
    assert calls == [(1, ["actor.optim.lr=1e-4", "trainer.total_steps=5"]), (2, ["actor.optim.lr=1e-4", "trainer.total_steps=5"])]
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "1", "oops", "--root", str(tmp_path)])


def test_runs_as_a_script(tmp_path):
    """``python benchmarks/learning.py`` (the documented command): its folder's rewards.py must not
    shadow the rewards package when the report is read."""
    import subprocess
    import sys

    _fake_run(tmp_path / "seed_4", 20.0, 30.0, 0.2, 0.4, 100.0)
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "learning.py"), "--seeds", "4", "--report-only",
                             "--root", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert any(line.split()[:4] == ["4", "20.000", "30.000", "10.000"] for line in result.stdout.splitlines())
