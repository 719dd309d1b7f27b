"""Failures inside a training run: a failing video evaluation is logged and counted, never
fatal; a failing step keeps the progress of the steps before it; the evaluator's policy
backend follows ``eval.backend``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rl.batch import GRPOBatch, Phase
from rl.config import TinyModelConfig, load_config
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.prompt_loader import PromptLoader
from rl.tracking import Tracker


class _Actor:
    """Stands in for the actor group: export_hf / save_checkpoint write a folder, as rank 0 does."""

    def __init__(self):
        self.calls: list[str] = []

    def _write(self, method: str, path: str) -> str:
        self.calls.append(method)
        Path(path).mkdir(parents=True)
        (Path(path) / "config.json").write_text("{}")
        return path

    def export_hf(self, path: str) -> str:
        return self._write("export_hf", path)

    def save_checkpoint(self, path: str) -> None:
        self._write("save_checkpoint", path)

    def load_checkpoint(self, path: str) -> None:
        assert Path(path, "config.json").is_file()


class _Evaluator:
    def __init__(self, fail: bool):
        self.fail = fail
        self.checkpoints: list[str] = []

    def evaluate(self, checkpoint_dir: str, step: int) -> dict:
        self.checkpoints.append(checkpoint_dir)
        assert Path(checkpoint_dir, "config.json").is_file()
        if self.fail:
            raise RuntimeError("rollout.backend=vllm needs vLLM (No module named 'vllm')")
        return {"metrics": {"val/J&F": 0.5}, "images": []}


def test_failed_video_evaluation_is_counted_and_training_goes_on(tmp_path, caplog):
    cfg = load_config(["recipe=quickstart", f"trainer.run_dir={tmp_path}", "trainer.train_batch_size=1",
                       "actor.ppo_mini_batch_size=1"])
    trainer = GRPOTrainer(cfg, model_path=str(tmp_path / "policy"), train_records=[{"id": "a"}])
    trainer.groups = Groups(actor=_Actor(), rollout=None, reward=None)
    trainer.evaluator = _Evaluator(fail=True)
    for step, expected in ((50, 1.0), (100, 2.0)):
        trainer.global_step = step
        with caplog.at_level("ERROR", logger="rl.driver"):
            assert trainer.evaluate_videos() == {"val/eval_failures": expected}
        assert f"video evaluation at step {step} failed" in caplog.text and "No module named 'vllm'" in caplog.text
        assert not (tmp_path / "eval_export" / f"step_{step}").exists()   # the export is removed either way
    trainer.evaluator.fail = False
    trainer.global_step = 150
    assert trainer.evaluate_videos() == {"val/J&F": 0.5, "val/eval_failures": 2.0}
    assert len(trainer.evaluator.checkpoints) == 3 and not (tmp_path / "eval_export").exists()


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="checks the environment without vLLM")
def test_evaluator_backend_follows_eval_backend(tmp_path):
    from rl.eval.pipeline import EvalPipeline
    from rl.models.tiny import build_tiny_qwen25vl
    from rl.rollout.hf import HFRolloutBackend
    from rl.rollout.vllm import VLLMUnavailableError

    ckpt = str(build_tiny_qwen25vl(tmp_path / "policy", TinyModelConfig(), image_size=112))
    args = ["recipe=quickstart_vllm", "eval.sampler=oracle"]
    assert isinstance(EvalPipeline(load_config(args), ckpt).backend, HFRolloutBackend)   # eval.backend=hf
    for cfg in (load_config(args + ["eval.backend=vllm"]),
                load_config(["recipe=quickstart", "rollout.backend=vllm", "eval.sampler=oracle"])):  # "" = rollout's
        with pytest.raises(VLLMUnavailableError, match="make setup-vllm"):
            EvalPipeline(cfg, ckpt)


RECORDS = [{"id": f"r{i}"} for i in range(7)]


class _ScriptedTrainer(GRPOTrainer):
    """``train_step`` draws its batch and random numbers as the real one does, then fails at
    step ``fail_at``: before touching the actor (a dead rollout worker) or during the update."""

    def __init__(self, cfg, fail_at=None, during_update=False):
        super().__init__(cfg, model_path="unused", train_records=RECORDS)
        self.fail_at, self.during_update = fail_at, during_update
        self.groups = Groups(actor=_Actor(), rollout=None, reward=None)
        self.tracker = Tracker(self.run_dir, cfg.tracking, {}, default_name="t")
        self.batches: dict[int, list[str]] = {}
        self.draws: dict[int, float] = {}

    def train_step(self) -> dict[str, float]:
        self.batches[self.global_step] = [r["id"] for r in self.loader.next_batch()]
        noise = self.draws[self.global_step] = float(torch.rand(()))
        if self.global_step == self.fail_at:
            if self.during_update:     # the update has started: the batch reached Phase.UPDATING
                self.batch = GRPOBatch(step=self.global_step, phase=Phase.UPDATING)
            raise RuntimeError("ray.exceptions.ActorDiedError: the rollout worker died")
        return {"critic/score/mean": noise}


def _cfg(run_dir: Path):
    return load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", "trainer.total_steps=5",
                        "trainer.train_batch_size=2", "actor.ppo_mini_batch_size=2", "trainer.save_freq=0",
                        "trainer.export_hf=false", "tracking.wandb_mode=disabled"])


def test_a_failed_step_checkpoints_the_steps_before_it_and_resume_continues_exactly(tmp_path, caplog):
    torch.manual_seed(0)
    reference = _ScriptedTrainer(_cfg(tmp_path / "ref"))
    reference.fit()

    torch.manual_seed(0)
    broken = _ScriptedTrainer(_cfg(tmp_path / "run"), fail_at=3)
    with caplog.at_level("ERROR", logger="rl.driver"), pytest.raises(RuntimeError, match="rollout worker died"):
        broken.fit()
    assert "step 3 failed; saved the completed step 2" in caplog.text
    assert broken.ckpt.complete_steps() == [2] and broken.groups.actor.calls == ["save_checkpoint"]
    state = broken.ckpt.load_trainer_state(broken.ckpt.latest())
    loader = PromptLoader(RECORDS, 2, seed=0)          # where an uninterrupted loader is after 2 batches
    loader.next_batch(), loader.next_batch()
    assert state.step == 2 and state.extra["loader"] == loader.state_dict()

    torch.manual_seed(123)                               # a new process: the checkpoint restores the RNG
    resumed = _ScriptedTrainer(_cfg(tmp_path / "run"))
    assert resumed._maybe_resume() is not None and resumed.global_step == 2
    resumed.fit()
    assert resumed.batches == {k: v for k, v in reference.batches.items() if k > 2}   # same data order
    assert resumed.draws == {k: v for k, v in reference.draws.items() if k > 2}       # same random numbers


def test_a_step_that_failed_inside_the_update_saves_nothing(tmp_path, caplog):
    broken = _ScriptedTrainer(_cfg(tmp_path / "run"), fail_at=3, during_update=True)
    with caplog.at_level("ERROR", logger="rl.driver"), pytest.raises(RuntimeError):
        broken.fit()
    assert broken.ckpt.complete_steps() == [] and broken.groups.actor.calls == []
    assert "step 3 failed during the actor update or weight sync" in caplog.text
