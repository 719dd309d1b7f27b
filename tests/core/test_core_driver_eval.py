"""Video evaluation inside a training run: a failing evaluation is logged and counted, never
fatal; the evaluator's policy backend follows ``eval.backend``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rl.config import TinyModelConfig, load_config
from rl.driver import GRPOTrainer, Groups


class _Actor:
    """Stands in for the actor group: export_hf writes a folder, as the real rank 0 does."""

    def call_all(self, method: str, path: str) -> list[str]:
        assert method == "export_hf"
        Path(path).mkdir(parents=True)
        (Path(path) / "config.json").write_text("{}")
        return [path, ""]


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
