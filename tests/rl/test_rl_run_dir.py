"""A run directory belongs to one run: claiming, refusing another run, overwrite into a backup,
adopting a directory made before run ids, and checkpoint pruning that only touches the run's own steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.checkpoint import CheckpointManager, TrainerState
from rl.config import Config
from rl.run_dir import RUN_FILE, RunDirError, claim_run_dir, read_run_id, run_settings, setting_differences


def _cfg(run_dir: Path, **trainer) -> Config:
    cfg = Config()
    cfg.trainer.run_dir = str(run_dir)
    for key, value in trainer.items():
        setattr(cfg.trainer, key, value)
    return cfg


def _old_run(run_dir: Path) -> dict[str, str]:
    """The files a finished run leaves (contents are checked after a refusal or an overwrite)."""
    files = {"metrics.jsonl": '{"step": 1}\n', "batches.jsonl": '{"step": 1, "ids": ["a"]}\n',
             "samples.jsonl": '{"step": 1}\n', "export/config.json": "{}", "sft/config.json": "{\"sft\": 1}"}
    for name, text in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    return files


def _save(manager: CheckpointManager, step: int) -> None:
    manager.begin(step)
    manager.finalize(step, TrainerState(step=step))


def test_a_new_run_dir_is_claimed_and_the_same_config_continues_it(tmp_path):
    run_dir = tmp_path / "run"
    first = claim_run_dir(_cfg(run_dir))
    assert read_run_id(run_dir) == first.run_id and len(first.run_id) == 12
    again = claim_run_dir(_cfg(run_dir))
    assert again.run_id == first.run_id
    # Keys that may change on resume: more steps, other frequencies, W&B off.
    changed = _cfg(run_dir, total_steps=500, save_freq=7, val_freq=3)
    changed.tracking.wandb_mode = "disabled"
    changed.eval.freq = 9
    assert claim_run_dir(changed).run_id == first.run_id


def test_resume_never_in_a_run_dir_of_another_run_is_refused_and_touches_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = claim_run_dir(_cfg(run_dir))
    files = _old_run(run_dir)
    with pytest.raises(RunDirError) as err:
        claim_run_dir(_cfg(run_dir, resume="never"))
    message = str(err.value)
    assert f"trainer.run_dir={run_dir}" in message and first.run_id in message
    assert "trainer.resume=never" in message and "trainer.overwrite=true" in message
    assert all((run_dir / name).read_text() == text for name, text in files.items())
    assert read_run_id(run_dir) == first.run_id


def test_a_changed_setting_that_cannot_change_on_resume_is_refused_naming_it(tmp_path):
    run_dir = tmp_path / "run"
    claim_run_dir(_cfg(run_dir))
    cfg = _cfg(run_dir)
    cfg.actor.optim.lr = 0.5
    with pytest.raises(RunDirError, match=r"actor\.optim\.lr: [0-9.e-]+ -> 0\.5"):
        claim_run_dir(cfg)
    cfg = _cfg(run_dir, seed=3)
    with pytest.raises(RunDirError, match=r"trainer\.seed: 0 -> 3"):
        claim_run_dir(cfg)


def test_overwrite_moves_the_old_run_to_a_backup_and_starts_a_new_run(tmp_path):
    run_dir = tmp_path / "run"
    first = claim_run_dir(_cfg(run_dir))
    files = _old_run(run_dir)
    _save(CheckpointManager(run_dir), 10)
    second = claim_run_dir(_cfg(run_dir, overwrite=True, seed=5))
    assert second.run_id != first.run_id and read_run_id(run_dir) == second.run_id
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("run.backup-")]
    assert len(backups) == 1
    backup = backups[0]
    # Nothing deleted: the old run's files (and its run id and checkpoint) are in the backup.
    for name, text in files.items():
        if name.startswith("sft/"):   # the cold start stays (it checks its own settings)
            assert (run_dir / name).read_text() == text and not (backup / name).exists()
        else:
            assert (backup / name).read_text() == text and not (run_dir / name).exists()
    assert read_run_id(backup) == first.run_id
    assert (backup / "checkpoints" / "global_step_10" / "COMPLETE").is_file()
    assert sorted(p.name for p in run_dir.iterdir()) == [RUN_FILE, "sft"]


def test_pruning_and_resume_only_see_the_runs_own_checkpoints(tmp_path):
    """The data-loss case: another run's steps 9 and 10 in the directory must neither be pruned nor resumed."""
    run_dir = tmp_path / "run"
    old = CheckpointManager(run_dir, keep_last=2, run_id="oldrun")
    for step in (9, 10):
        _save(old, step)
    new = CheckpointManager(run_dir, keep_last=2, run_id="newrun")
    assert new.latest() is None and new.resolve("auto") is None
    for step in (1, 2, 3):
        _save(new, step)
    assert new.complete_steps() == [2, 3] and new.latest() == new.step_dir(3)
    assert old.complete_steps() == [9, 10]
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["global_step_10", "global_step_2", "global_step_3", "global_step_9"]
    # Another run's step directory is never overwritten either.
    with pytest.raises(FileExistsError, match="belongs to run oldrun"):
        new.begin(9)
    assert old.is_complete(old.step_dir(9))
    assert json.loads((new.step_dir(3) / "COMPLETE").read_text()) == {"step": 3, "run_id": "newrun"}


def test_the_manager_reads_the_run_id_from_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    record = claim_run_dir(_cfg(run_dir))
    manager = CheckpointManager(run_dir)
    assert manager.run_id == record.run_id
    _save(manager, 1)
    assert CheckpointManager.owner(manager.step_dir(1)) == record.run_id
    assert CheckpointManager(tmp_path / "elsewhere").run_id == ""     # no run.json: every step counts


def _legacy_run(run_dir: Path, cfg: Config) -> None:
    """A run directory written before run ids: outputs, config.yaml and an unstamped checkpoint."""
    from rl.config import to_yaml

    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    _save(CheckpointManager(run_dir, run_id=""), 4)


def test_a_legacy_run_dir_with_a_matching_config_is_adopted_with_its_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    _legacy_run(run_dir, _cfg(run_dir))
    record = claim_run_dir(_cfg(run_dir, total_steps=999))
    assert read_run_id(run_dir) == record.run_id
    manager = CheckpointManager(run_dir)
    assert manager.complete_steps() == [4] and manager.owner(manager.step_dir(4)) == record.run_id


def test_a_legacy_run_dir_with_another_config_or_resume_never_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    _legacy_run(run_dir, _cfg(run_dir))
    changed = _cfg(run_dir, train_batch_size=3)
    with pytest.raises(RunDirError, match=r"without a run id .*trainer\.train_batch_size: 16 -> 3"):
        claim_run_dir(changed)
    with pytest.raises(RunDirError, match="trainer.resume=never"):
        claim_run_dir(_cfg(run_dir, resume="never"))
    (run_dir / "config.yaml").unlink()
    with pytest.raises(RunDirError, match="no readable config.yaml"):
        claim_run_dir(_cfg(run_dir))
    assert not (run_dir / RUN_FILE).exists()
    assert CheckpointManager.owner(run_dir / "checkpoints" / "global_step_4") is None


def test_settings_leave_out_the_keys_that_may_change_and_compare_by_value():
    cfg = Config()
    settings = run_settings(cfg)
    assert "actor.optim.lr" in settings and "trainer.seed" in settings
    assert not any(k.startswith(("tracking.", "trainer.total_steps", "trainer.run_dir", "eval.freq")) for k in settings)
    old, new = {"a": 1, "b": [1, 2], "gone": 0}, {"a": 1, "b": [1, 3], "added": 0}
    assert setting_differences(old, new) == ["b: [1, 2] -> [1, 3]"]
