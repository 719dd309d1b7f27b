"""The SFT cold start is reused only when it was trained with the current settings; a stale one
is moved aside (never deleted) and trained again, with a warning naming what changed."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import rl.cold_start
import rl.models.loading
import rl.sft
from rl.cold_start import ensure_sft_checkpoint, resolve_policy
from rl.config import Config
from rl.sft import COMPLETE_MARKER, sft_settings


@pytest.fixture
def trained(monkeypatch, tmp_path):
    """``run_sft`` replaced by a stand-in that writes a complete checkpoint (with the settings record,
    as ``run_sft`` does) holding the sft.max_steps it was trained with; returns the list of trainings."""
    runs: list[int] = []

    def fake_run_sft(cfg, init_path, records):
        out = Path(cfg.trainer.run_dir) / "sft"
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"max_steps": cfg.sft.max_steps}))
        (out / COMPLETE_MARKER).write_text(json.dumps({"steps": cfg.sft.max_steps, "settings": sft_settings(cfg)}))
        runs.append(cfg.sft.max_steps)
        return out

    monkeypatch.setattr(rl.sft, "run_sft", fake_run_sft)
    monkeypatch.setattr(rl.cold_start, "prepare_data",
                        lambda cfg: SimpleNamespace(train=[{"id": "a", "sft_target": "t"}], val=[]))
    monkeypatch.setattr(rl.cold_start, "init_ray", lambda cfg: None)
    monkeypatch.setattr(rl.models.loading, "ensure_policy", lambda *a, **k: tmp_path / "tiny_init")
    return runs


def _cfg(run_dir: Path, max_steps: int = 5) -> Config:
    cfg = Config()
    cfg.trainer.run_dir = str(run_dir)
    cfg.sft.max_steps = max_steps
    return cfg


def _trained_steps(run_dir: Path) -> int:
    return json.loads((run_dir / "sft" / "config.json").read_text())["max_steps"]


def test_the_same_settings_reuse_the_checkpoint(tmp_path, trained):
    assert resolve_policy(_cfg(tmp_path)) == str(tmp_path / "sft")
    other_grpo = _cfg(tmp_path)
    other_grpo.actor.optim.lr = 0.5             # a GRPO setting: the cold start does not depend on it
    other_grpo.trainer.total_steps = 7
    assert ensure_sft_checkpoint(other_grpo) == tmp_path / "sft"
    assert trained == [5]


def test_changed_settings_move_the_old_checkpoint_aside_and_train_again(tmp_path, trained, caplog):
    ensure_sft_checkpoint(_cfg(tmp_path, max_steps=5))
    with caplog.at_level("WARNING", logger="rl.cold_start"):
        ensure_sft_checkpoint(_cfg(tmp_path, max_steps=9))
    assert trained == [5, 9] and _trained_steps(tmp_path) == 9
    assert "sft.max_steps: 5 -> 9" in caplog.text
    backups = sorted(tmp_path.glob("sft.backup-*"))
    assert len(backups) == 1 and json.loads((backups[0] / "config.json").read_text())["max_steps"] == 5


def test_a_checkpoint_without_a_settings_record_is_not_trusted(tmp_path, trained, caplog):
    old = tmp_path / "sft"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"max_steps": 150}))
    (old / COMPLETE_MARKER).write_text(json.dumps({"steps": 150, "init": "x"}))   # written by an older version
    with caplog.at_level("WARNING", logger="rl.cold_start"):
        ensure_sft_checkpoint(_cfg(tmp_path, max_steps=5))
    assert "does not record the settings" in caplog.text
    assert trained == [5] and _trained_steps(tmp_path) == 5
    assert [json.loads((p / "config.json").read_text())["max_steps"] for p in tmp_path.glob("sft.backup-*")] == [150]


def test_sft_samples_path_trains_on_its_train_split_not_the_runs_samples(tmp_path, monkeypatch):
    from data.build import write_samples

    seen = []
    monkeypatch.setattr(rl.sft, "run_sft", lambda cfg, init, records: seen.append([r["id"] for r in records]) or
                        tmp_path / "sft")
    monkeypatch.setattr(rl.cold_start, "prepare_data", lambda cfg: pytest.fail("the run's samples were built"))
    monkeypatch.setattr(rl.cold_start, "init_ray", lambda cfg: None)
    monkeypatch.setattr(rl.models.loading, "ensure_policy", lambda *a, **k: tmp_path / "tiny_init")
    teacher = {"target": "<think>t</think><answer>A</answer>"}
    records = [{"id": i, "task": "aks", "images": [], "prompt": "p", "ground_truth": {}, "split": split,
                "teacher_cot": teacher} for i, split in (("k1", "train"), ("k2", "val"), ("a1", "train"))]
    cfg = _cfg(tmp_path)
    cfg.sft.targets = "teacher"
    cfg.sft.samples_path = str(write_samples(records, tmp_path / "cot.jsonl"))
    ensure_sft_checkpoint(cfg)
    assert seen == [["k1", "a1"]]
