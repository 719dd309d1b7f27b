"""Helpers for the launch tests: free ports, a fresh copy of the checkout, processes that are always cleaned up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_checkout(dst: Path) -> Path:
    """The files a clone of this working tree would have (tracked + new, minus .gitignore'd)."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


class Processes:
    """Processes started in their own sessions; :meth:`cleanup` ends them, their descendants and any
    process whose command line names this test's private temp dir (Ray workers), by pid."""

    def __init__(self, marker: Path):
        self.marker = str(marker)
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Optional[Path] = None) -> subprocess.Popen:
        handle = open(log, "w")
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def _ours(self) -> set[int]:
        import psutil

        pids = set()
        for proc in self.procs:
            try:
                parent = psutil.Process(proc.pid)
                pids.add(parent.pid)
                pids.update(c.pid for c in parent.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(self.marker in part for part in (p.info["cmdline"] or [])):
                    pids.add(p.info["pid"])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        pids.discard(os.getpid())
        return pids

    def cleanup(self) -> None:
        import psutil

        pids = self._ours()
        for proc in self.procs:  # `ray start --block` stops its node on SIGTERM
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs):
            time.sleep(0.5)
        pids |= self._ours()
        for pid in pids:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def private_tmp():
    """A short private folder under /tmp (Ray's socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="vrt", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def processes(private_tmp):
    procs = Processes(private_tmp)
    try:
        yield procs
    finally:
        procs.cleanup()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, alive: Optional[subprocess.Popen] = None,
               log: Optional[Path] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if alive is not None and alive.poll() is not None:
            tail = log.read_text()[-4000:] if log and log.exists() else ""
            raise AssertionError(f"process exited ({alive.returncode}) before {what}\n{tail}")
        time.sleep(1)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{tail}")


def state_rows(dashboard: str, kind: str, token: str) -> list[dict[str, Any]]:
    """Rows of the Ray state API (``/api/v0/<kind>``), dead entries included, with the cluster token."""
    request = urllib.request.Request(f"{dashboard}/api/v0/{kind}?limit=10000&detail=1",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    data = body.get("data", body)
    while isinstance(data, dict) and "result" in data:
        data = data["result"]
    return list(data)


def python_env(home: Path, **extra: str) -> dict[str, str]:
    """The test's child environment: this venv first on PATH, a private HOME, W&B offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WANDB_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "HOME": str(home), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
                "TOKENIZERS_PARALLELISM": "false", "RAY_DEDUP_LOGS": "0"})
    env.update(extra)
    return env
