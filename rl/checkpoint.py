"""Run-level checkpoints: step directories, trainer state, atomic completion, pruning.

Layout under ``<run_dir>/checkpoints/``::

    global_step_<k>/
        actor/                 model + optimizer DCP shards written by the actor workers
                               (``PolicyWorker.save_checkpoint(manager.model_dir(k))``)
        trainer_state.json     step, data-loader position, RNG states, W&B run id, extras
                               (the rollout workers' seed counters: ``extra["rollout"]``)
        RUN_ID                 id of the run that wrote the step (``<run_dir>/run.json``)
        COMPLETE               written last (atomically); only complete steps count

Protocol of one save (driver)::

    step_dir = manager.begin(step)                   # fresh, empty step directory
    actor_group.save_checkpoint(manager.model_dir(step))
    manager.finalize(step, TrainerState(...))        # state, then COMPLETE, then pruning

A save killed before ``finalize`` leaves no ``COMPLETE`` marker: :meth:`latest` ignores the
directory, and the next :meth:`begin` of that step (or pruning) removes it.

A manager of a run with an id (``run.json`` in the run directory, :mod:`rl.run_dir`) only
sees, resumes from, overwrites and prunes step directories stamped with that id; a run
directory without ``run.json`` is handled as before run ids existed (every step is its own).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

__all__ = [
    "CheckpointManager",
    "TrainerState",
    "capture_rng_state",
    "restore_rng_state",
    "MODEL_SUBDIR",
    "TRAINER_STATE_FILE",
    "COMPLETE_MARKER",
    "RUN_ID_FILE",
]

MODEL_SUBDIR = "actor"
TRAINER_STATE_FILE = "trainer_state.json"
COMPLETE_MARKER = "COMPLETE"
RUN_ID_FILE = "RUN_ID"
_STEP_DIR = re.compile(r"^global_step_(\d+)$")


# ------------------------------------------------------------------------------ RNG


def _tensor_to_b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _b64_to_byte_tensor(text: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())


def capture_rng_state() -> dict[str, Any]:
    """JSON-serialisable RNG states of python ``random``, numpy's global RNG and torch (CPU, CUDA)."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_kind, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": _tensor_to_b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_tensor_to_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (missing entries are left alone)."""
    if "python" in state:
        version, values, gauss = state["python"]
        random.setstate((version, tuple(values), gauss))
    if "numpy" in state:
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "torch" in state:
        torch.set_rng_state(_b64_to_byte_tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_b64_to_byte_tensor(s) for s in state["cuda"]])


# ------------------------------------------------------------------------ trainer state


@dataclass
class TrainerState:
    """What the driver needs besides the model/optimizer to resume a run exactly.

    Attributes:
        step: completed training steps (the checkpoint's ``global_step``).
        epoch: data-loader epoch.
        data_position: prompts already consumed in the current epoch.
        data_seed: seed of the data-loader permutation.
        rng: :func:`capture_rng_state` output.
        wandb_run_id: W&B run to resume ("" = none).
        extra: any JSON-serialisable extras (e.g. best validation score).
    """

    step: int
    epoch: int = 0
    data_position: int = 0
    data_seed: int = 0
    rng: dict[str, Any] = field(default_factory=dict)
    wandb_run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "trainer state") -> "TrainerState":
        try:
            data = json.loads(text)
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"corrupt {source}: {exc}") from exc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- manager


class CheckpointManager:
    """Step checkpoints of one run under ``<run_dir>/checkpoints``, keeping the last ``keep_last`` complete ones.

    ``keep_last <= 0`` keeps every checkpoint. ``run_id``: the run whose steps this manager
    handles (None: the id in ``<run_dir>/run.json``; "": no id, every step directory counts).
    """

    def __init__(self, run_dir: str | os.PathLike, keep_last: int = 2, run_id: Optional[str] = None):
        from rl.run_dir import read_run_id

        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.keep_last = keep_last
        self.run_id = read_run_id(self.run_dir) if run_id is None else run_id

    def step_dir(self, step: int) -> Path:
        return self.root / f"global_step_{int(step)}"

    def model_dir(self, step: int) -> Path:
        """Where the workers write their DCP shards for ``step``."""
        return self.step_dir(step) / MODEL_SUBDIR

    @staticmethod
    def is_complete(path: str | os.PathLike) -> bool:
        return (Path(path) / COMPLETE_MARKER).is_file()

    @staticmethod
    def owner(path: str | os.PathLike) -> Optional[str]:
        """Run id stamped in a step directory (None: not stamped)."""
        stamp = Path(path) / RUN_ID_FILE
        return stamp.read_text().strip() if stamp.is_file() else None

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether a step directory belongs to this manager's run (always, without a run id)."""
        return not self.run_id or self.owner(path) == self.run_id

    def _all_step_dirs(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for item in self.root.iterdir():
            match = _STEP_DIR.match(item.name)
            if match and item.is_dir():
                found.append((int(match.group(1)), item))
        return sorted(found)

    def _step_dirs(self) -> list[tuple[int, Path]]:
        """This run's step directories, ascending."""
        return [(step, path) for step, path in self._all_step_dirs() if self.owns(path)]

    def complete_steps(self) -> list[int]:
        """Steps of this run with a complete checkpoint, ascending."""
        return [step for step, path in self._step_dirs() if self.is_complete(path)]

    def adopt(self) -> list[Path]:
        """Stamp unstamped step directories with this run's id (a run directory made before run
        ids existed, taken over by :func:`rl.run_dir.claim_run_dir`); returns them."""
        if not self.run_id:
            return []
        adopted = []
        for _, path in self._all_step_dirs():
            if self.owner(path) is None:
                _write_atomic(path / RUN_ID_FILE, self.run_id)
                adopted.append(path)
        return adopted

    def latest(self) -> Optional[Path]:
        """Newest complete step directory, or None."""
        steps = self.complete_steps()
        return self.step_dir(steps[-1]) if steps else None

    def begin(self, step: int) -> Path:
        """Create an empty directory for ``step`` (removing this run's previous attempt) and return it.

        Raises:
            FileExistsError: the directory belongs to another run (it is left alone).
        """
        path = self.step_dir(step)
        if path.exists():
            if not self.owns(path):
                raise FileExistsError(f"{path} belongs to run {self.owner(path) or '(no id)'}, not to this run "
                                      f"{self.run_id}; it is left alone (move it away to save step {step})")
            shutil.rmtree(path)
        path.mkdir(parents=True)
        if self.run_id:
            _write_atomic(path / RUN_ID_FILE, self.run_id)
        return path

    def finalize(self, step: int, state: TrainerState) -> Path:
        """Write ``trainer_state.json`` then the completion marker; prune old checkpoints."""
        path = self.step_dir(step)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint directory {path} does not exist; call begin({step}) first")
        if state.step != step:
            raise ValueError(f"trainer state step {state.step} != checkpoint step {step}")
        _write_atomic(path / TRAINER_STATE_FILE, state.to_json())
        _write_atomic(path / COMPLETE_MARKER, json.dumps({"step": step, "run_id": self.run_id}))
        self.prune()
        return path

    def prune(self) -> list[Path]:
        """Delete this run's incomplete directories older than its newest complete one and its
        complete ones beyond the last ``keep_last``; returns the removed paths. Step directories
        of other runs are never touched."""
        complete = self.complete_steps()
        if not complete:
            return []
        keep = set(complete if self.keep_last <= 0 else complete[-self.keep_last:])
        newest = complete[-1]
        removed = []
        for step, path in self._step_dirs():
            if step in keep or (step > newest):  # a newer directory may be a save in progress
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        return removed

    def load_trainer_state(self, path: str | os.PathLike) -> TrainerState:
        """Trainer state of a complete checkpoint directory.

        Raises:
            FileNotFoundError: missing directory, completion marker or trainer_state.json.
            ValueError: corrupt trainer_state.json.
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        if not self.is_complete(path):
            raise FileNotFoundError(f"checkpoint {path} is incomplete (no {COMPLETE_MARKER} marker)")
        state_file = path / TRAINER_STATE_FILE
        if not state_file.is_file():
            raise FileNotFoundError(f"checkpoint {path} has no {TRAINER_STATE_FILE}")
        return TrainerState.from_json(state_file.read_text(), source=str(state_file))

    def resolve(self, resume: str) -> Optional[Path]:
        """``trainer.resume``: ``auto`` -> this run's latest complete step (or None), ``never`` -> None,
        else that path (any run's checkpoint)."""
        if resume == "never":
            return None
        if resume == "auto":
            return self.latest()
        path = Path(resume)
        if not path.is_dir():
            raise FileNotFoundError(f"trainer.resume checkpoint not found: {path}")
        if not self.is_complete(path):
            raise FileNotFoundError(f"trainer.resume checkpoint {path} is incomplete (no {COMPLETE_MARKER} marker)")
        return path
