"""The annotation engine on Ray Data with a real tiny Qwen2.5-VL: a 2-actor pool gives the same rows as
running the shards in this process; a killed driver resumes where it stopped; a killed actor is
replaced and its shard redone. The final output always equals an uninterrupted run's: every record
exactly once, in input order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from data.annotate.jobs import build_job
from data.annotate.runner import plan_job
from data.annotate.shards import shard_paths
from data.annotate.worker import annotate_shard
from data.build import build_samples
from rl.config import load_config
from rl.models.loading import ensure_policy

NUM_SAMPLES = 12


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """(samples file, tiny model dir): 12 KTG samples of synthetic videos and a tiny random policy."""
    work = tmp_path_factory.mktemp("annotate")
    cfg = load_config(["recipe=quickstart", f"data.root={work / 'data'}", "data.synthetic.num_videos=4",
                       f"data.max_samples={NUM_SAMPLES}", "data.val_fraction=0"])
    samples = work / "ktg.jsonl"
    build_samples(cfg.data, samples, reward=cfg.reward.name, progress=False)
    model = ensure_policy(replace(cfg.model, path=""), work, int(max(cfg.data.input_size)))
    return samples, model


def _overrides(inputs, out: Path, actors: int = 2) -> list[str]:
    samples, model = inputs
    return ["recipe=quickstart", f"trainer.run_dir={out.parent / 'run'}", f"annotate.inputs=[{samples}]",
            f"annotate.model_path={model}", f"annotate.output_dir={out}", f"annotate.num_actors={actors}",
            "annotate.shard_size=2", "annotate.max_tokens=24", "annotate.batch_size=2", "annotate.generate.n=2",
            "annotate.generate.temperature=1.0", "cluster.num_cpus=2"]


def _reference(inputs, out: Path) -> list[dict]:
    """The rows of every shard computed in this process, without Ray (the uninterrupted result)."""
    from rl.rollout import build_rollout_backend

    cfg = load_config(_overrides(inputs, out))
    plan = plan_job(cfg, "generate")
    backend = build_rollout_backend(cfg.rollout, plan.model_path, seed=cfg.annotate.seed)
    job = build_job("generate", cfg, plan.model_path)
    rows = []
    for spec in plan.shards:
        annotate_shard(spec, job, backend, cfg.annotate, out, cfg.rollout.stop)
        rows += [json.loads(line) for line in shard_paths(out, spec.index)[1].read_text().splitlines()]
    return rows


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    return _reference(inputs, tmp_path_factory.mktemp("reference") / "out")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _check_complete(rows: list[dict], reference: list[dict]) -> None:
    assert len(rows) == 2 * NUM_SAMPLES  # n=2 responses per sample
    ids = [(r["id"], r["response_index"]) for r in rows]
    assert len(set(ids)) == len(ids)
    assert rows == reference


def _args(inputs, out):
    return ["generate", *_overrides(inputs, out)[1:]]


def _done_shards(out: Path) -> list[Path]:
    return sorted((out / "shards").glob("shard-*.jsonl")) if (out / "shards").is_dir() else []


@pytest.mark.slow
def test_rerun_after_killed_driver_resumes_without_loss_or_duplicates(inputs, reference, launcher, tmp_path):
    out = tmp_path / "out"
    proc = launcher.start("launch.annotate", *_args(inputs, out), log_name="first.log")
    launcher.wait_for(lambda: len(_done_shards(out)) >= 2, proc, 300, "two finished shards")
    launcher.kill(proc)  # SIGKILL to the driver's process group
    # Ray's own processes (raylet, actors) are in other groups: kill those of this test's Ray too.
    subprocess.run(["pkill", "-9", "-f", str(launcher.ray_tmp)], check=False)
    time.sleep(1)
    finished = {p: p.stat().st_mtime_ns for p in _done_shards(out)}
    assert 2 <= len(finished) < NUM_SAMPLES // 2, "the kill should land before the job finished"
    assert not (out / "generate.jsonl").exists()
    launcher.run("launch.annotate", *_args(inputs, out), log_name="second.log")
    _check_complete(_rows(out / "generate.jsonl"), reference)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished, "finished shards must not be redone"
    assert "(%d done, %d to do)" % (len(finished), NUM_SAMPLES // 2 - len(finished)) in (tmp_path / "second.log").read_text()


def _actor_pids(root_pid: int) -> list[int]:
    """Ray Data map actors under the driver process (their process titles name the map operator)."""
    try:
        children = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "MapWorker" in title or "ShardWorker" in title:
            found.append(child.pid)
    return found


def test_two_actor_pool_with_a_killed_actor_matches_in_process_shards(inputs, reference, launcher, tmp_path):
    """A 2-actor pool gives the rows of the shards run in this process, even when one actor is
    SIGKILLed mid-job: Ray Data replaces it and its shard is redone. Not marked slow: the fast suite's
    one run of the Ray Data layer."""
    # In its own process: Ray keeps process-wide state (e.g. its auth token) after ray.shutdown.
    out = tmp_path / "out"
    proc = launcher.start("launch.annotate", *_args(inputs, out), log_name="run.log")
    launcher.wait_for(lambda: len(_actor_pids(proc.pid)) == 2, proc, 300, "two live actors")
    victims = _actor_pids(proc.pid)
    deadline = time.monotonic() + 300
    while not _done_shards(out) and time.monotonic() < deadline:  # poll fast: shards take seconds
        time.sleep(0.05)
    os.kill(victims[0], signal.SIGKILL)
    assert len(_done_shards(out)) < NUM_SAMPLES // 2, "the kill should land before the job finished"
    try:
        proc.wait(timeout=600)
    finally:
        launcher.kill(proc)
    log = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, log[-4000:]
    assert "Ray Data actors: 2 x (1 CPU, 0 GPU)" in log
    _check_complete(_rows(out / "generate.jsonl"), reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 2 * NUM_SAMPLES and summary["annotated"] == summary["done"] == NUM_SAMPLES
