"""Secrets never reach a Ray session's files: a job submitted through ``launch.submit`` to a real
local Ray head (started here: own temp dir, free ports, stopped in the fixture's finally).

The head is started with a fake ``WANDB_API_KEY`` in its environment (the "node's environment"
way); the client has another in its environment (never forwarded) and passes a third in a
``--secrets-file``. Job 1 (a probe module in a tiny working_dir) checks by hash that it got the
file's value, job 2 (no secrets file) that it got the node's. Afterwards every file under the
Ray temp dir (the session's logs included) is read and none of the three values may occur. A marker passed with ``--env`` must occur: runtime envs ARE
written to those files, so the search would have found a forwarded secret.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import sys
from pathlib import Path

import pytest

from launch import submit
from tests.launch.conftest import free_port, python_env, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROBE = '''"""Exit 0 when WANDB_API_KEY hashes to the expected=<sha256> argument (never prints the value)."""
import hashlib
import os
import sys

expected = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)["expected"]
got = hashlib.sha256(os.environ.get("WANDB_API_KEY", "").encode()).hexdigest()
print("probe: secret received" if got == expected else "probe: secret NOT received", flush=True)
sys.exit(0 if got == expected else 3)
'''


def _working_dir(root: Path) -> Path:
    """The smallest working_dir ``launch.submit`` accepts, plus the probe."""
    (root / "launch").mkdir(parents=True)
    for name in ("__init__.py", "with_secrets.py"):
        shutil.copy2(REPO / "launch" / name, root / "launch" / name)
    (root / "launch" / "train.py").write_text("")  # marks a checkout for runtime_env()
    (root / "probe_secret.py").write_text(PROBE)
    return root


def _files_holding(folder: Path, needles: dict[str, bytes]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            for name, needle in needles.items():
                if needle in data:
                    found[name].append(str(path.relative_to(folder)))
    return found


def test_a_submitted_jobs_secrets_never_reach_the_ray_session_files(tmp_path, private_tmp, processes, monkeypatch,
                                                                    capsys):
    node_secret = "vrsFakeNodeKey" + secrets.token_hex(12)
    client_secret = "vrsFakeClientKey" + secrets.token_hex(12)
    file_secret = "vrsFakeFileKey" + secrets.token_hex(12)
    marker = "vrsEnvMarker" + secrets.token_hex(12)
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"WANDB_API_KEY={file_secret}\n")
    secrets_file.chmod(0o600)
    home = tmp_path / "home"
    home.mkdir()
    ray_tmp = private_tmp / "r"
    gcs, dash = free_port(), free_port()
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    log = tmp_path / "head.log"
    head = processes.start(
        [ray_bin, "start", "--head", "--block", "--disable-usage-stats", f"--port={gcs}", "--include-dashboard=true",
         f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1",
         f"--temp-dir={ray_tmp}", "--num-cpus=1", "--num-gpus=0", "--object-store-memory=100000000",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"],
        python_env(home, WANDB_API_KEY=node_secret), log)
    wait_until(lambda: "Ray runtime started" in log.read_text(), 240, "the Ray head", head, log)

    monkeypatch.setenv("HOME", str(home))
    for key in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", client_secret)
    monkeypatch.setattr(submit, "MODULES", (*submit.MODULES, "probe_secret"))
    common = ["--address", f"http://127.0.0.1:{dash}", "--working-dir", str(_working_dir(tmp_path / "wd")),
              "--module", "probe_secret", "--env", f"VRS_PROBE_MARKER={marker}"]
    sha = {name: hashlib.sha256(value.encode()).hexdigest() for name, value in
           (("file", file_secret), ("node", node_secret))}
    code = submit.main([*common, "--secrets-file", str(secrets_file), f"expected={sha['file']}"])
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    assert "probe: secret received" in out
    assert "WANDB_API_KEY not forwarded" in err and str(secrets_file) in err
    code = submit.main([*common, f"expected={sha['node']}"])
    out, err = capsys.readouterr()
    assert code == 0, out[-3000:] + err[-3000:]
    assert "probe: secret received" in out and "Ray nodes' environment" in err

    found = _files_holding(ray_tmp, {"client": client_secret.encode(), "file": file_secret.encode(),
                                     "node": node_secret.encode(), "marker": marker.encode()})
    logs = [p for p in ray_tmp.glob("session_*/logs/*") if p.is_file()]
    assert any(p.name.startswith("runtime_env_agent") for p in logs), sorted(p.name for p in logs)
    assert found["marker"], "the --env marker should be in the session files (runtime envs are logged)"
    assert found["client"] == found["file"] == found["node"] == [], found
