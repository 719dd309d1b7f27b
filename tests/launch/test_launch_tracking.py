"""Tracker: W&B step continuity after a kill + resume (read back from the offline run files), images, sync."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from launch.sync import find_offline_runs, main as sync_main, read_offline_run, step_problems
from rl.config import TrackingConfig
from rl.tracking import WANDB_STEP_FILE, Tracker, read_metrics

REPO = Path(__file__).resolve().parents[2]
DISABLED = TrackingConfig(wandb_mode="disabled")


def _write_wandb_log(path: Path, records: list[bytes], block: int = 32768) -> None:
    """A W&B transaction log written from the format description (header, LevelDB-log chunks)."""
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    for data in records:
        first = True
        while True:
            left = block - len(out) % block
            if left < 7:
                out += b"\0" * left
                continue
            piece, data = data[: left - 7], data[left - 7:]
            kind = (1 if not data else 2) if first else (4 if not data else 3)
            out += struct.pack("<IHB", zlib.crc32(piece, zlib.crc32(bytes([kind]))), len(piece), kind) + piece
            first = False
            if not data:
                break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))


def _history(step: int, padding: int = 0) -> bytes:
    from wandb.proto import wandb_internal_pb2 as pb

    record = pb.Record()
    for key, value in (("_step", step), ("loss", 0.5), ("pad", "x" * padding)):
        item = record.history.item.add()
        item.nested_key.append(key)
        item.value_json = json.dumps(value)
    return record.SerializeToString()


def test_offline_reader_reassembles_records_across_blocks_and_ignores_a_torn_tail(tmp_path):
    from rl.wandb_offline import max_logged_step, read_records

    path = tmp_path / "wandb" / "offline-run-20260101_000000-abc" / "run-abc.wandb"
    _write_wandb_log(path, [_history(1), _history(2, padding=40000), _history(3)])
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03\x04\x05\x00\x01garbage")  # killed mid-write
    steps = [json.loads(r.history.item[0].value_json) for r in read_records(path)]
    assert steps == [1, 2, 3]
    assert max_logged_step(tmp_path / "wandb", "abc") == 3
    assert max_logged_step(tmp_path / "wandb", "other") is None


def test_resume_starts_wandb_after_the_last_step_its_files_hold(tmp_path):
    _write_wandb_log(tmp_path / "wandb" / "offline-run-20260101_000000-abc" / "run-abc.wandb",
                     [_history(s) for s in (1, 2, 3, 4)])  # the killed process's W&B got to step 4
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 6)))
    tracker = Tracker(tmp_path, DISABLED, {}, run_id="abc", resume_step=3)  # its checkpoint was step 3
    assert tracker._wandb_min_step == 4 and not tracker._to_wandb(4)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    # The W&B files are gone (synced and deleted): wandb_step.json still knows.
    shutil.rmtree(tmp_path / "wandb")
    assert Tracker(tmp_path, DISABLED, {}, run_id="abc", resume_step=3)._wandb_min_step == 4
    assert json.loads((tmp_path / WANDB_STEP_FILE).read_text()) == {"step": 4}
    fresh = Tracker(tmp_path, DISABLED, {})
    assert fresh._wandb_min_step == -1 and fresh._wandb is None and not (tmp_path / WANDB_STEP_FILE).exists()


def test_log_images_writes_pngs_and_rejects_wrong_shapes(tmp_path):
    from PIL import Image

    tracker = Tracker(tmp_path, DISABLED, {})
    overlay = np.zeros((8, 10, 3), np.uint8)
    overlay[2:4, 3:5] = (255, 0, 0)
    paths = tracker.log_images("eval/overlays", [overlay, np.full((8, 10, 3), 0.5)], step=7,
                               captions=["mask", "grey"])
    assert [p.name for p in paths] == ["step_000007_0.png", "step_000007_1.png"]
    assert np.array_equal(np.asarray(Image.open(paths[0])), overlay)
    assert np.asarray(Image.open(paths[1]))[0, 0, 0] == 128
    with pytest.raises(ValueError, match="image 0 has shape"):
        tracker.log_images("bad", [np.zeros((8, 10))], step=1)
    with pytest.raises(ValueError, match="captions"):
        tracker.log_images("bad", [overlay], step=1, captions=["a", "b"])


_WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    import numpy as np
    from rl.config import TrackingConfig
    from rl.tracking import Tracker
    from launch.sync import find_offline_runs, read_offline_run

    run_dir, run_id, resume, first, last, mode = sys.argv[1:7]
    cfg = TrackingConfig(wandb_mode="offline", project="p", group="g", name="resume-test", tags=["t"])
    tracker = Tracker(run_dir, cfg, {"lr": 0.1}, run_id=run_id or None,
                      resume_step=int(resume) if resume else None, default_name="x")
    for step in range(int(first), int(last) + 1):
        tracker.log({"reward/accuracy": step / 10, "timing_s/step": 1.0, "training/global_step": step}, step)
    tracker.log_images("overlays", [np.zeros((4, 4, 3), np.uint8)], step=int(last), captions=["c"])
    Path(run_dir, "run_id").write_text(tracker.run_id)
    if mode == "finish":
        tracker.finish()
        sys.exit(0)
    if mode == "flushed":
        # Until W&B has written step last-1 (the last step's row is committed only by a later step).
        while not any(int(last) - 1 in read_offline_run(f).steps for f in find_offline_runs(run_dir)):
            time.sleep(0.2)
    Path(run_dir, "ready").write_text(mode)
    time.sleep(600)  # until killed
''')


def _killed_writer(script: Path, run_dir: Path, env: dict, *args: str) -> None:
    (run_dir / "ready").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "ready").exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the writer did not get ready"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and its wandb-core service
        proc.wait(timeout=30)


@pytest.mark.slow
def test_killed_and_resumed_run_keeps_its_wandb_run_and_never_repeats_or_loses_a_step(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # 1: steps 1..4, killed once W&B has written step 3 (step 4 was never committed to W&B).
    _killed_writer(script, run_dir, env, "", "", "1", "4", "flushed")
    run_id = (run_dir / "run_id").read_text()
    first = [read_offline_run(f) for f in find_offline_runs(run_dir)]
    assert first[0].steps == [1, 2, 3]
    # 2: resumed from the checkpoint at step 2, re-runs 3..6 and is killed at once (W&B keeps little or nothing).
    _killed_writer(script, run_dir, env, run_id, "2", "3", "6", "now")
    # 3: resumed from the checkpoint at step 5, runs 6..7 and finishes.
    done = subprocess.run([sys.executable, str(script), str(run_dir), run_id, "5", "6", "7", "finish"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    runs = [read_offline_run(f) for f in find_offline_runs(run_dir)]
    assert len(runs) == 3 and {r.run_id for r in runs} == {run_id}
    # W&B: every step exactly once, in order, across the three processes (steps the second process
    # lost are re-sent by the third from metrics.jsonl).
    assert [s for r in runs for s in r.steps] == [1, 2, 3, 4, 5, 6, 7]
    assert step_problems(runs) == []
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3, 4, 5, 6, 7]
    last = runs[-1]
    assert last.group == "g" and last.name == "resume-test" and last.config["lr"] == 0.1
    # Images of the last step reached W&B; metric groups are plotted against the global step.
    images = [row for row in last.history if "overlays/_type" in row]
    assert len(images) == 1 and images[0]["overlays/captions"] == ["c"] and images[0]["_step"] == 7
    assert last.metrics["reward/*"] == "training/global_step"
    assert last.metrics["timing_s/*"] == "training/global_step"
    assert sync_main([str(run_dir)]) == 0


def test_offline_reader_rejects_files_that_are_not_wandb_logs(tmp_path):
    from launch.sync import OfflineRunError, read_records

    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a log")
    with pytest.raises(OfflineRunError, match="not a W&B transaction log"):
        list(read_records(bad))
