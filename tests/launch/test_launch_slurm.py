"""launch/slurm: the sbatch script's control flow (with stand-ins for srun/scontrol/python) and ray_node.py."""

from __future__ import annotations

import importlib.util
import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "launch" / "slurm" / "train.sbatch"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    _stub(bin_dir / "scontrol", 'printf "gpu-a\\ngpu-b\\n"\n')
    _stub(bin_dir / "srun", f'echo "srun $*" >> {calls}\n'
                            'if [[ " $* " == *" hostname "* ]]; then echo 127.0.0.2; fi\n')
    _stub(bin_dir / "python", f'echo "python $* | mode=$RAY_AUTH_MODE token=$RAY_AUTH_TOKEN_PATH" >> {calls}\n'
                              'if [[ " $* " == *" launch.submit "* ]]; then exit "${SUBMIT_STATUS:-0}"; fi\n')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "gpu-[a-b]", "SLURM_JOB_ID": "42",
           "VRS_RL_REPO": str(tmp_path), "PYTHON": str(bin_dir / "python"), "HEAD_START_WAIT": "0",
           "HOME": str(tmp_path)}
    return env, calls


def test_sbatch_starts_a_head_then_one_worker_per_node_then_submits(fake_slurm, tmp_path):
    env, calls = fake_slurm
    result = subprocess.run(["bash", str(SBATCH), "recipe=videoseg_r1", "cluster=2x8gpu", "trainer.total_steps=5"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [l for l in result.stdout.splitlines() if l.startswith("vrs-rl: ")]
    assert [l.split()[1] for l in steps[1:]] == ["starting", "starting", "waiting", "submitting", "job"]
    assert "Ray head on gpu-a" in steps[1] and "Ray worker 1 on gpu-b" in steps[2]
    # The srun steps run in the background: they may log after the script ended, in any order.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(f" {w} " in calls.read_text() for w in ("head", "worker")):
        time.sleep(0.1)
    lines = calls.read_text().splitlines()
    head = next(i for i, l in enumerate(lines) if " head " in l)
    worker = next(i for i, l in enumerate(lines) if " worker " in l)
    wait = next(i for i, l in enumerate(lines) if " wait " in l)
    submit = next(i for i, l in enumerate(lines) if "launch.submit" in l)
    assert "hostname" in lines[0] and wait < submit
    assert "-w gpu-a" in lines[head] and "--cluster 2x8gpu --port 6379 --dashboard-port 8265" in lines[head]
    assert "--node-ip-address=127.0.0.2" in lines[head]
    assert "-w gpu-b" in lines[worker] and "--index 1 --address 127.0.0.2:6379" in lines[worker]
    assert "--nodes 2" in lines[wait]
    assert ("--address http://127.0.0.2:8265 --module launch.train recipe=videoseg_r1 cluster=2x8gpu "
            "trainer.total_steps=5") in lines[submit]
    token = tmp_path / "runs" / "slurm" / "42" / "auth_token"
    assert f"mode=token token={token}" in lines[submit]
    assert len(token.read_text().strip()) == 64 and stat.S_IMODE(token.stat().st_mode) == 0o600


def test_sbatch_exits_with_the_jobs_status(fake_slurm):
    env, _ = fake_slurm
    result = subprocess.run(["bash", str(SBATCH), "recipe=quickstart"], env={**env, "SUBMIT_STATUS": "1"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "status 1" in result.stdout


def _ray_node():
    spec = importlib.util.spec_from_file_location("ray_node", REPO / "launch" / "slurm" / "ray_node.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_node_gives_each_node_its_share_of_the_cluster_config():
    ray_node = _ray_node()
    head = " ".join(ray_node.ray_start_args("2x8gpu", 0, True, None, 7000, 8265, ["--temp-dir=/tmp/x"]))
    assert "--block" in head and "--head --port=7000" in head and "--dashboard-port=8265" in head
    assert "--num-gpus=8" in head and "--num-cpus=64" in head
    assert f"--resources={json.dumps({'node_train': 1.0})}" in head and head.endswith("--temp-dir=/tmp/x")
    worker = " ".join(ray_node.ray_start_args("2x8gpu", 1, False, "h:7000", 6379, 8265))
    assert "--address=h:7000" in worker and "node_gen" in worker and "--head" not in worker
    assert ray_node.node_resources("local_cpu", 0) == {}


def test_ray_node_cli_prints_the_command_and_rejects_a_node_the_cluster_lacks():
    script = str(REPO / "launch" / "slurm" / "ray_node.py")
    ok = subprocess.run([sys.executable, script, "--print-only", "worker", "--cluster", "local_2node", "--index", "1",
                         "--address", "127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and '--resources={"node_gen": 1.0}' in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, script, "--print-only", "worker", "--cluster", "2x8gpu", "--index", "2",
                          "--address", "h:1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--index 2" in bad.stderr


def _dashboard_host(args: list[str]) -> str:
    hosts = [a.split("=", 1)[1] for a in args if a.startswith("--dashboard-host=")]
    assert len(hosts) == 1, args
    return hosts[0]


def test_the_head_dashboard_binds_to_the_node_address_or_loopback_unless_asked(monkeypatch):
    ray_node = _ray_node()
    monkeypatch.delenv("VRS_RL_DASHBOARD_HOST", raising=False)
    # Default: loopback; with the node's address given to ray start, that (internal) address.
    assert _dashboard_host(ray_node.ray_start_args("local_cpu", 0, True, None, 7000, 8265)) == "127.0.0.1"
    assert _dashboard_host(ray_node.ray_start_args(
        "local_cpu", 0, True, None, 7000, 8265, ["--node-ip-address=10.1.2.3"])) == "10.1.2.3"
    assert _dashboard_host(ray_node.ray_start_args(
        "local_cpu", 0, True, None, 7000, 8265, ["--node-ip-address", "10.1.2.4"])) == "10.1.2.4"
    # Asked for: the flag, else the environment variable.
    assert _dashboard_host(ray_node.ray_start_args("local_cpu", 0, True, None, 7000, 8265,
                                                   dashboard_host="0.0.0.0")) == "0.0.0.0"
    monkeypatch.setenv("VRS_RL_DASHBOARD_HOST", "0.0.0.0")
    assert _dashboard_host(ray_node.ray_start_args(
        "local_cpu", 0, True, None, 7000, 8265, ["--node-ip-address=10.1.2.3"])) == "0.0.0.0"


def test_ray_node_cli_default_does_not_listen_on_every_interface(monkeypatch):
    monkeypatch.delenv("VRS_RL_DASHBOARD_HOST", raising=False)
    script = str(REPO / "launch" / "slurm" / "ray_node.py")
    env = {k: v for k, v in __import__("os").environ.items() if k != "VRS_RL_DASHBOARD_HOST"}
    out = subprocess.run([sys.executable, script, "--print-only", "head", "--cluster", "local_cpu", "--",
                          "--node-ip-address=10.9.8.7"], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "--dashboard-host=10.9.8.7" in out.stdout and "0.0.0.0" not in out.stdout
