"""A real two-node Ray cluster on this machine (two ``ray start`` processes via launch/slurm/ray_node.py,
with Ray 2.60 token authentication), a fresh checkout submitted through ``launch.submit``: the tiny
quickstart runs across both nodes with every role on the node the cluster config pins it to, is
stopped mid-run, resubmitted, resumes, and keeps its W&B run and step numbering."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch.sync import find_offline_runs, read_offline_run, step_problems
from tests.launch.conftest import free_port, fresh_checkout, python_env, state_rows, wait_until

pytestmark = pytest.mark.slow

TINY = [
    "recipe=quickstart", "cluster=local_2node",
    "data.synthetic.num_videos=6", "data.synthetic.num_frames=4", "sft.max_steps=3",
    "trainer.total_steps=3", "trainer.train_batch_size=4", "actor.ppo_mini_batch_size=2", "rollout.n=4",
    "rollout.max_response_length=48", "trainer.save_freq=1", "trainer.val_freq=3", "trainer.val_num_prompts=4",
    "trainer.log_samples_freq=2", "trainer.export_hf=false", "eval.freq=0", "trainer.val_before_train=false",
    # Fewer processes on 2 cores: no reference policy, one reward worker.
    "actor.use_kl_loss=false", "cluster.reward.num_workers=1",
    "tracking.wandb_mode=offline", "tracking.group=two-node", "tracking.name=tiny",
]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _mark(what: str, start: list[float]) -> None:
    print(f"[{time.monotonic() - start[0]:6.1f}s] {what}", flush=True)


def _submit(env: dict, checkout: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.submit", *args], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_two_node_cluster_runs_a_submitted_quickstart_on_the_configured_nodes(tmp_path, private_tmp, processes):
    t0 = [time.monotonic()]
    checkout = fresh_checkout(tmp_path / "clone")
    home = tmp_path / "home"
    home.mkdir()
    token_file = private_tmp / "token"
    token = secrets.token_hex(32)
    token_file.write_text(token)
    token_file.chmod(0o600)
    cluster_env = python_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
    gcs, dash = free_port(), free_port()
    node = [sys.executable, str(checkout / "launch" / "slurm" / "ray_node.py")]
    common = ["--node-ip-address=127.0.0.1", "--object-store-memory=300000000"]

    head = processes.start(
        [*node, "head", "--cluster", "local_2node", "--port", str(gcs), "--dashboard-port", str(dash),
         "--dashboard-host", "127.0.0.1", "--", *common, f"--temp-dir={private_tmp / 'h'}",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
        cluster_env, tmp_path / "head.log", cwd=checkout)
    wait_until(lambda: "Ray runtime started" in (tmp_path / "head.log").read_text(), 180, "the head node",
               head, tmp_path / "head.log")
    worker = processes.start(
        [*node, "worker", "--cluster", "local_2node", "--index", "1", "--address", f"127.0.0.1:{gcs}", "--",
         *common, f"--temp-dir={private_tmp / 'w'}", f"--dashboard-agent-listen-port={free_port()}"],
        cluster_env, tmp_path / "worker.log", cwd=checkout)
    waited = subprocess.run([*node, "wait", "--address", f"127.0.0.1:{gcs}", "--nodes", "2", "--timeout", "180"],
                            env=cluster_env, cwd=checkout, capture_output=True, text=True, timeout=300)
    assert waited.returncode == 0, waited.stdout + waited.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    assert worker.poll() is None
    address = f"http://127.0.0.1:{dash}"
    _mark("two nodes up", t0)

    # Token authentication: without the token the Jobs API refuses, with a clear message.
    no_token = _submit(python_env(home), checkout, "--address", address, "list", timeout=120)
    assert no_token.returncode == 2 and "requires a token" in no_token.stderr, no_token.stderr

    client_env = python_env(home, RAY_AUTH_TOKEN_PATH=str(token_file))
    run_dir, data_root = tmp_path / "run", tmp_path / "data"
    items = [*TINY, f"trainer.run_dir={run_dir}", f"data.root={data_root}"]

    # Job 1: submitted without waiting, stopped once step 1 (and its checkpoint) is done.
    first = _submit(client_env, checkout, "--address", address, "--submission-id", "vrs-first", "--no-wait",
                    *items, timeout=300)
    assert first.returncode == 0 and "submitted job vrs-first" in first.stdout, first.stdout + first.stderr
    wait_until(lambda: any(r["step"] >= 1 for r in _rows(run_dir / "metrics.jsonl")), 900, "step 1 of job 1",
               head, tmp_path / "head.log")
    _mark("job 1 at step 1", t0)
    stopped = _submit(client_env, checkout, "--address", address, "stop", "vrs-first", timeout=300)
    assert stopped.returncode == 0 and "STOPPED" in stopped.stdout, stopped.stdout + stopped.stderr
    assert (run_dir / "checkpoints" / "global_step_1" / "COMPLETE").exists()

    _mark("job 1 stopped", t0)
    # Job 2: the same command resumes from the last checkpoint and follows the logs to the end.
    second = _submit(client_env, checkout, "--address", address, "--submission-id", "vrs-second", *items)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    assert "job vrs-second: SUCCEEDED" in second.stdout and "resumed from" in second.stdout
    _mark("job 2 finished", t0)
    status = _submit(client_env, checkout, "--address", address, "status", "vrs-second", timeout=120)
    assert "vrs-second: SUCCEEDED" in status.stdout

    # The finished job's metrics: every step once, in order, with the training metrics.
    metrics = _rows(run_dir / "metrics.jsonl")
    assert [r["step"] for r in metrics] == [1, 2, 3]
    assert "critic/score/mean" in metrics[-1] and "val/score/mean" in metrics[-1]

    # Same W&B run across both jobs; W&B has every step exactly once, in order.
    state = json.loads((run_dir / "checkpoints" / "global_step_3" / "trainer_state.json").read_text())
    every = [read_offline_run(f) for f in find_offline_runs(run_dir)]
    runs = [r for r in every if r.job_type != "sft"]      # the SFT cold start has a W&B run of its own
    sft = [r for r in every if r.job_type == "sft"]
    assert len(sft) == 1 and sft[0].group == "two-node" and sft[0].name == "tiny-sft"
    assert len(runs) >= 2 and {r.run_id for r in runs} == {state["wandb_run_id"]}
    assert [s for r in runs for s in r.steps] == [1, 2, 3] and step_problems(runs) == []
    assert runs[-1].group == "two-node" and runs[-1].name == "tiny"

    # Placement: every role on the node that carries its pool's node_resource.
    nodes = {n["node_id"]: n for n in state_rows(address, "nodes", token)}
    assert len(nodes) == 2
    train_node = next(i for i, n in nodes.items() if "node_train" in n["resources_total"])
    gen_node = next(i for i, n in nodes.items() if "node_gen" in n["resources_total"])
    actors = state_rows(address, "actors", token)
    by_class: dict[str, set[str]] = {}
    for actor in actors:
        by_class.setdefault(actor["class_name"], set()).add(actor["node_id"])
    assert by_class["PolicyActor"] == {train_node}         # the SFT and GRPO actor ranks of both jobs
    assert by_class["RolloutActor"] == {gen_node}
    assert by_class["RewardWorker"] == {gen_node}
    assert sum(a["class_name"] == "PolicyActor" for a in actors) >= 2 * 2  # 2 jobs x 2 FSDP ranks
