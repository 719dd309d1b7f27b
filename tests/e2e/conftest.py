"""Helpers for end-to-end tests that run the launchers in their own process groups."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]


class Launcher:
    """Starts ``python -m <module> key=value ...`` in a new session (so the process and the
    Ray instance it starts can be killed together) with a private RAY_TMPDIR."""

    def __init__(self, cwd: Path):
        self.cwd = cwd
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"RAY_TMPDIR": str(self.ray_tmp), "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
                    "RAY_DEDUP_LOGS": "0", "TOKENIZERS_PARALLELISM": "false",
                    "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
        return env

    def start(self, module: str, *args: str, log_name: str = "run.log") -> subprocess.Popen:
        log = open(self.cwd / log_name, "w")
        proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=self.cwd, env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, module: str, *args: str, timeout: float = 900, log_name: str = "run.log") -> str:
        proc = self.start(module, *args, log_name=log_name)
        try:
            proc.wait(timeout=timeout)
        finally:
            self.kill(proc)
        text = (self.cwd / log_name).read_text()
        assert proc.returncode == 0, f"{module} exited {proc.returncode}:\n{text[-6000:]}"
        return text

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def wait_for(self, condition: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if proc.poll() is not None:
                raise AssertionError(f"process exited ({proc.returncode}) before {what}")
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")

    def cleanup(self) -> None:
        for proc in self.procs:
            self.kill(proc)
        # Ray processes of a killed driver live in its session; make sure none survive.
        subprocess.run(["pkill", "-9", "-f", str(self.ray_tmp)], check=False)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture
def launcher(tmp_path):
    runner = Launcher(tmp_path)
    try:
        yield runner
    finally:
        runner.cleanup()
