"""The starting policy's validation (trainer.val_before_train / val_only) in GRPOTrainer.fit, with fake
worker groups: logged at step 0 before step 1 of a fresh run, never on resume; val_only trains nothing.
Also the validation metrics of a hand-made batch (val/diversity/*, val/response_length/mean)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rl.config import load_config
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.rollout.base import GeneratedResponse, RolloutOutput
from rl.tracking import Tracker, read_metrics

VALID = '<think>x</think><answer>[{"bbox_2d": [1, 2, 5, 6], "point_2d": [3, 4]}]</answer>'
TARGET = {"task": "ktg", "ground_truth": {"objects": [{"bbox_2d": [1, 2, 5, 6], "point_2d": [3, 4]}]}}
VAL = [{"id": "v0", "query": "q0", **TARGET}, {"id": "v1", "query": "q1", **TARGET}]
# v0 answers with 3 tokens and a valid box (score 1), v1 with 1 token and no answer (score 0).
RESPONSES = {"v0": (VALID, [5, 6, 7]), "v1": ("no idea", [8])}


class _Actor:
    def export_hf(self, path: str) -> str:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text("{}")
        return path

    def save_checkpoint(self, path: str) -> None:
        Path(path).mkdir(parents=True)


class _Rollout:
    def __init__(self, trainer):
        self.trainer = trainer

    def generate(self, records, sampling, on_groups=None):
        self.trainer.events.append(("validate", self.trainer.global_step))
        responses = [GeneratedResponse(i, RESPONSES[r["id"]][1], None, RESPONSES[r["id"]][0], "stop")
                     for i, r in enumerate(records)]
        return [RolloutOutput([[1]] * len(records), responses, n=1)], 0.0


class _Reward:
    def submit(self, groups):
        return SimpleNamespace(groups=groups, failures=0, restarts=0)

    def collect(self, pending):
        return [[{"score": float("bbox_2d" in r), "accuracy": float("bbox_2d" in r)} for r in responses]
                for responses, _, _ in pending.groups]


class _Evaluator:
    def __init__(self, trainer):
        self.trainer = trainer

    def evaluate(self, checkpoint_dir: str, step: int) -> dict:
        self.trainer.events.append(("eval", step))
        return {"metrics": {"val/J&F": 40.0 + step, "val/J&F_stderr": 2.0}, "images": []}


class _Trainer(GRPOTrainer):
    """Real fit / validate / validate_start / evaluate_videos; a train step only records itself."""

    def __init__(self, cfg):
        super().__init__(cfg, model_path="unused", train_records=[{"id": "a"}, {"id": "b"}], val_records=VAL)
        self.events: list[tuple[str, int]] = []
        self.groups = Groups(actor=_Actor(), rollout=_Rollout(self), reward=_Reward())
        self.evaluator = _Evaluator(self)
        self.tracker = Tracker(self.run_dir, cfg.tracking, {}, default_name="t")
        self.val_sampling = None

    def train_step(self) -> dict[str, float]:
        self.events.append(("train", self.global_step))
        self.loader.next_batch()
        return {"critic/score/mean": 0.0}


def _cfg(run_dir: Path, *extra: str):
    return load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", "trainer.total_steps=2",
                        "trainer.val_freq=2", "trainer.train_batch_size=2", "actor.ppo_mini_batch_size=2",
                        "rollout.val_n=1", "trainer.export_hf=false", "tracking.wandb_mode=disabled", *extra])


def test_fresh_run_validates_the_start_at_step_zero_before_step_one(tmp_path):
    trainer = _Trainer(_cfg(tmp_path))
    trainer.fit()
    assert trainer.events == [("validate", 0), ("eval", 0), ("train", 1), ("train", 2), ("validate", 2), ("eval", 2)]
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [0, 1, 2]
    start = rows[0]
    assert start["training/global_step"] == 0 and "timing_s/testing" in start and "timing_s/eval_video" in start
    assert start["val/score/mean"] == 0.5 and start["val/reward/accuracy"] == 0.5
    assert start["val/diversity/distinct_answer_frac"] == 1.0           # 2 answers (the box list and "") / 2 queries
    assert start["val/diversity/valid_answer_frac"] == 0.5
    assert start["val/response_length/mean"] == 2.0                   # (3 + 1) / 2 tokens
    assert start["val/J&F"] == 40.0 and rows[2]["val/J&F"] == 42.0
    assert "critic/score/mean" not in start


def test_resumed_run_does_not_validate_the_start_again(tmp_path):
    trainer = _Trainer(_cfg(tmp_path))
    trainer.global_step = 1            # as _maybe_resume leaves it after loading the checkpoint of step 1
    trainer.fit()
    assert trainer.events == [("train", 2), ("validate", 2), ("eval", 2)]
    assert [r["step"] for r in read_metrics(tmp_path)] == [2]


@pytest.mark.parametrize("extra, events", [
    (["trainer.val_before_train=false"], [("train", 1), ("train", 2), ("validate", 2), ("eval", 2)]),
    # val_freq = 0: no held-out validation during training, so none at the start; the video evaluation still runs.
    (["trainer.val_freq=0"], [("eval", 0), ("train", 1), ("train", 2), ("eval", 2)]),
])
def test_start_validation_follows_the_config(tmp_path, extra, events):
    trainer = _Trainer(_cfg(tmp_path, *extra))
    trainer.fit()
    assert trainer.events == events


def test_val_only_validates_logs_and_trains_nothing(tmp_path):
    trainer = _Trainer(_cfg(tmp_path, "trainer.val_only=true", "trainer.val_freq=0"))
    metrics = trainer.fit()
    assert trainer.events == [("validate", 0), ("eval", 0)]          # val_only validates even with val_freq = 0
    assert metrics["val/reward/accuracy"] == 0.5 and metrics["val/J&F"] == 40.0
    assert [r["step"] for r in read_metrics(tmp_path)] == [0]
    assert trainer.global_step == 0 and trainer.ckpt.complete_steps() == []
    assert not (tmp_path / "export").exists()
