"""CheckpointManager: completion marker, pruning, trainer state and RNG round trips."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from rl.checkpoint import (
    COMPLETE_MARKER,
    TRAINER_STATE_FILE,
    CheckpointManager,
    TrainerState,
    capture_rng_state,
    restore_rng_state,
)


def save(manager: CheckpointManager, step: int, **extra) -> None:
    manager.begin(step)
    manager.model_dir(step).mkdir()
    (manager.model_dir(step) / "shard.distcp").write_bytes(b"weights")
    manager.finalize(step, TrainerState(step=step, epoch=1, data_position=step * 4, extra=extra))


def test_keeps_last_n_complete_and_ignores_incomplete(tmp_path):
    manager = CheckpointManager(tmp_path / "run", keep_last=2)
    assert manager.latest() is None and manager.resolve("auto") is None
    for step in (1, 2, 3, 4):
        save(manager, step)
    assert manager.complete_steps() == [3, 4]
    assert not manager.step_dir(1).exists() and not manager.step_dir(2).exists()
    assert manager.latest() == manager.step_dir(4)

    # a save killed mid-write: shards and even trainer_state.json, but no marker (or only its temp file)
    killed = manager.begin(5)
    (killed / TRAINER_STATE_FILE).write_text(TrainerState(step=5).to_json())
    (killed / (COMPLETE_MARKER + ".tmp")).write_text("{")
    assert manager.latest() == manager.step_dir(4)
    assert manager.load_trainer_state(manager.resolve("auto")).step == 4
    with pytest.raises(FileNotFoundError, match="incomplete"):
        manager.load_trainer_state(killed)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        manager.resolve(str(killed))

    save(manager, 6)
    assert manager.complete_steps() == [4, 6]
    assert not manager.step_dir(5).exists()  # the abandoned attempt is pruned
    assert manager.resolve("never") is None


def test_newer_incomplete_directory_survives_pruning(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=1)
    save(manager, 1)
    manager.begin(3)  # e.g. another save in progress
    save(manager, 2)
    assert manager.complete_steps() == [2]
    assert manager.step_dir(3).exists()


def test_begin_discards_a_previous_partial_attempt(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=0)
    path = manager.begin(7)
    (path / "stale").write_text("x")
    assert not (manager.begin(7) / "stale").exists()
    with pytest.raises(ValueError, match="step"):
        manager.finalize(7, TrainerState(step=8))
    with pytest.raises(FileNotFoundError, match="global_step_9"):
        manager.finalize(9, TrainerState(step=9))


def test_trainer_state_round_trip_with_rng(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.random(), np.random.rand(3), torch.rand(2)
    rng = capture_rng_state()
    expected = (random.random(), np.random.rand(4).tolist(), np.random.randn(2).tolist(), torch.rand(5))

    manager = CheckpointManager(tmp_path, keep_last=3)
    manager.begin(10)
    state = TrainerState(step=10, epoch=2, data_position=48, data_seed=5, rng=rng, wandb_run_id="abc123",
                         extra={"best_miou": 0.4, "history": [1, 2]})
    manager.finalize(10, state)
    loaded = manager.load_trainer_state(manager.latest())
    assert loaded == state
    json.loads((manager.latest() / TRAINER_STATE_FILE).read_text())  # plain JSON on disk

    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    restore_rng_state(loaded.rng)
    again = (random.random(), np.random.rand(4).tolist(), np.random.randn(2).tolist(), torch.rand(5))
    assert again[:3] == expected[:3]
    torch.testing.assert_close(again[3], expected[3], rtol=0, atol=0)


def test_corrupt_or_missing_state_is_named(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    save(manager, 1)
    (manager.step_dir(1) / TRAINER_STATE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="trainer_state.json"):
        manager.load_trainer_state(manager.step_dir(1))
    (manager.step_dir(1) / TRAINER_STATE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        manager.load_trainer_state(manager.step_dir(1))
    with pytest.raises(FileNotFoundError, match="global_step_42"):
        manager.load_trainer_state(manager.step_dir(42))
    with pytest.raises(FileNotFoundError, match="nope"):
        manager.resolve(str(tmp_path / "nope"))
