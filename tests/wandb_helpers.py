"""Reading offline W&B runs in tests: W&B's service process may still be writing a run's last
records when ``wandb.finish()`` returns, so readers wait until the records they expect are there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from rl.wandb_offline import find_offline_runs, read_offline_run


def read_runs(root: Path, count: int, written: Callable[[Any], bool], timeout: float = 60) -> list:
    """The ``count`` offline runs under ``root`` once ``written(run)`` holds for each (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [read_offline_run(f) for f in find_offline_runs(root)]
        if len(runs) == count and all(written(r) for r in runs):
            return runs
        assert time.monotonic() < deadline, [(r.path, r.steps, r.history[-1:]) for r in runs]
        time.sleep(0.1)
