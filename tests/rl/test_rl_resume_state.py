"""Exact resume of the sampling seeds: the rollout workers' seed counters go into every checkpoint
(also the one a failing step saves for the step before it) and back into fresh workers on resume,
so resumed steps sample with the seeds of an uninterrupted run, not with those of steps 1, 2, ..."""

from __future__ import annotations

from pathlib import Path

import pytest

from rl.config import load_config
from rl.driver import GRPOTrainer
from rl.groups import Groups
from rl.tracking import Tracker

RECORDS = [{"id": f"r{i}"} for i in range(7)]


class _Actor:
    def save_checkpoint(self, path: str) -> None:
        Path(path).mkdir(parents=True)

    def load_checkpoint(self, path: str) -> None:
        assert Path(path).is_dir()

    def call_all(self, method: str, path: str) -> list[str]:
        getattr(self, method)(path)
        return [path]

    def shutdown(self) -> None:
        pass


class _Rollout:
    """Two workers' seed counters, kept like ``RolloutGroup``: each generate call advances the
    counter of every worker that got prompts; a call samples with ``seed + 1000 * i + counter``."""

    def __init__(self):
        self.calls = [0, 0]

    def generate(self, num_prompts: int) -> list[int]:
        used = min(2, num_prompts)
        seeds = [1000 * i + self.calls[i] for i in range(used)]
        for i in range(used):
            self.calls[i] += 1
        return seeds

    def sampling_state(self) -> dict[str, list[int]]:
        return {"calls": list(self.calls)}

    def load_sampling_state(self, state: dict[str, list[int]]) -> None:
        self.calls = list(state["calls"])

    def shutdown(self) -> None:
        pass


class _SeedTrainer(GRPOTrainer):
    """``train_step`` generates once per step (twice on even steps, like a second dynamic-sampling
    round) and records the seeds; it fails at ``fail_at`` after generating, before the update."""

    def __init__(self, cfg, fail_at=None):
        super().__init__(cfg, model_path="unused", train_records=RECORDS)
        self.fail_at = fail_at
        self.groups = Groups(actor=_Actor(), rollout=_Rollout(), reward=None)
        self.tracker = Tracker(self.run_dir, cfg.tracking, {}, default_name="t")
        self.seeds: dict[int, list[int]] = {}

    def train_step(self) -> dict[str, float]:
        rounds = 2 if self.global_step % 2 == 0 else 1
        self.seeds[self.global_step] = [s for _ in range(rounds) for s in self.groups.rollout.generate(2)]
        if self.global_step == self.fail_at:
            raise RuntimeError("ray.exceptions.ActorDiedError: the rollout worker died")
        return {"critic/score/mean": 0.0}


def _cfg(run_dir: Path, total_steps: int = 5):
    return load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", f"trainer.total_steps={total_steps}",
                        "trainer.train_batch_size=2", "actor.ppo_mini_batch_size=2", "trainer.save_freq=0",
                        "trainer.export_hf=false", "tracking.wandb_mode=disabled", "trainer.val_before_train=false"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    trainer = _SeedTrainer(_cfg(tmp_path_factory.mktemp("ref")))
    trainer.fit()
    # Independent expectation: every call advances both counters by one.
    assert trainer.seeds[1] == [0, 1000] and trainer.seeds[2] == [1, 1001, 2, 1002]
    return trainer.seeds


def test_a_resumed_run_samples_with_the_seeds_of_the_uninterrupted_run(tmp_path, reference):
    first = _SeedTrainer(_cfg(tmp_path / "run", total_steps=2))   # stops (and checkpoints) after step 2
    first.fit()
    state = first.ckpt.load_trainer_state(first.ckpt.latest())
    assert state.step == 2 and state.extra["rollout"] == {"calls": [3, 3]}   # step 1: one call, step 2: two

    resumed = _SeedTrainer(_cfg(tmp_path / "run"))           # a new process: fresh workers, counters at 0
    assert resumed._maybe_resume() is not None and resumed.global_step == 2
    assert resumed.groups.rollout.calls == [3, 3]
    resumed.fit()
    assert resumed.seeds == {k: v for k, v in reference.items() if k > 2}


def test_a_failed_step_saves_the_counters_from_before_it(tmp_path, reference):
    broken = _SeedTrainer(_cfg(tmp_path / "run"), fail_at=3)
    with pytest.raises(RuntimeError, match="rollout worker died"):
        broken.fit()
    state = broken.ckpt.load_trainer_state(broken.ckpt.latest())
    assert state.step == 2 and state.extra["rollout"] == {"calls": [3, 3]}   # not the 4 after step 3's call

    resumed = _SeedTrainer(_cfg(tmp_path / "run"))
    assert resumed._maybe_resume() is not None and resumed.global_step == 2
    resumed.fit()
    assert resumed.seeds == {k: v for k, v in reference.items() if k > 2}


def test_a_checkpoint_without_counters_still_resumes(tmp_path):
    """Checkpoints written before the counters were stored resume as before (fresh seed streams)."""
    first = _SeedTrainer(_cfg(tmp_path / "run", total_steps=2))
    first.fit()
    state = first.ckpt.load_trainer_state(first.ckpt.latest())
    del state.extra["rollout"]
    first.ckpt.finalize(2, state)
    resumed = _SeedTrainer(_cfg(tmp_path / "run"))
    assert resumed._maybe_resume() is not None and resumed.groups.rollout.calls == [0, 0]
