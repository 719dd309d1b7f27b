"""``python -m launch.sync`` exits honestly: a missing folder is named as missing (exit 2), an
existing folder without offline runs says so (exit 1), a broken offline run is named and the
others are still listed (exit 1)."""

from __future__ import annotations

import pytest

from launch.sync import main as sync_main


def test_a_missing_folder_is_named_as_missing(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    assert sync_main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(missing) in err and "no W&B offline runs" not in err


def test_a_file_is_not_a_run_folder(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text("{}\n")
    assert sync_main([str(path)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_an_existing_folder_without_runs_says_so(tmp_path, capsys):
    assert sync_main([str(tmp_path)]) == 1
    assert f"no W&B offline runs under {tmp_path}" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, b"not a wandb log"], ids=["no_wandb_file", "bad_header"])
def test_a_broken_offline_run_is_named_and_fails_the_command(tmp_path, capsys, content):
    broken = tmp_path / "wandb" / "offline-run-20240101_000000-abc"
    broken.mkdir(parents=True)
    if content is not None:
        (broken / "run-abc.wandb").write_bytes(content)
    assert sync_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(broken) in err and "Traceback" not in err
