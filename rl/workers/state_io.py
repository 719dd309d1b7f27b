"""Persisting a worker's state: sharded DCP checkpoints and HF-format export.

DCP layout of one worker checkpoint directory (written by all ranks together)::

    <dir>/.metadata, <dir>/__<rank>_*.distcp   model + optimizer shards (torch.distributed.checkpoint)
    <dir>/worker_state.json                     step, role, world size, lr-scheduler state (rank 0)

``load`` accepts a different world size (DCP reshards on load).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

__all__ = ["WORKER_STATE_FILE", "save_dcp", "load_dcp", "read_worker_state", "save_hf", "copy_processor_files"]

WORKER_STATE_FILE = "worker_state.json"
# Files of a HF model folder that save_pretrained writes itself (not copied from the source).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")
_WRITTEN_BY_SAVE_PRETRAINED = {"config.json", "generation_config.json", "model.safetensors.index.json",
                               "pytorch_model.bin.index.json"}


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def save_dcp(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    worker_state: dict[str, Any],
) -> Path:
    """Save model (+ optimizer) shards with DCP and ``worker_state`` as JSON. Collective."""
    directory = Path(directory)
    if _rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
    _barrier()
    optimizers = [optimizer] if optimizer is not None else []
    model_sd, optim_sd = get_state_dict(model, optimizers)
    state = {"model": model_sd}
    if optimizer is not None:
        state["optimizer"] = optim_sd
    dcp.save(state, checkpoint_id=str(directory))
    if _rank() == 0:
        tmp = directory / (WORKER_STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(worker_state, indent=2))
        os.replace(tmp, directory / WORKER_STATE_FILE)
    _barrier()
    return directory


def read_worker_state(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``worker_state.json`` of a worker checkpoint, after checking the DCP files exist.

    Raises:
        FileNotFoundError: the directory, its DCP ``.metadata`` or ``worker_state.json`` is missing.
        RuntimeError: ``worker_state.json`` is not valid JSON.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"worker checkpoint not found: {directory}")
    for required in (directory / ".metadata", directory / WORKER_STATE_FILE):
        if not required.exists():
            raise FileNotFoundError(f"worker checkpoint {directory} is incomplete: {required.name} not found")
    try:
        return json.loads((directory / WORKER_STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RuntimeError(f"worker checkpoint {directory}: unreadable {WORKER_STATE_FILE}: {exc}") from exc


def load_dcp(
    directory: str | os.PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer]
) -> dict[str, Any]:
    """Restore model (+ optimizer) shards saved by :func:`save_dcp`; returns the worker state. Collective.

    Raises:
        FileNotFoundError: the directory, its DCP metadata or its worker_state.json is missing.
        RuntimeError: the checkpoint cannot be read or does not match the model/optimizer.
    """
    directory = Path(directory)
    worker_state = read_worker_state(directory)
    optimizers = [optimizer] if optimizer is not None else []
    model_sd, optim_sd = get_state_dict(model, optimizers)
    state = {"model": model_sd}
    if optimizer is not None:
        state["optimizer"] = optim_sd
    try:
        dcp.load(state, checkpoint_id=str(directory))
        set_state_dict(
            model,
            optimizers,
            model_state_dict=state["model"],
            optim_state_dict=state.get("optimizer", {}),
            options=StateDictOptions(strict=True),
        )
    except (Exception, CheckpointException) as exc:  # CheckpointException derives from BaseException
        raise RuntimeError(f"cannot restore worker checkpoint {directory}: {exc}") from exc
    return worker_state


def copy_processor_files(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Copy tokenizer / processor / chat-template files of a HF model folder; returns their names.

    Everything at the top level except weights and the files ``save_pretrained`` writes.
    """
    source, target = Path(source), Path(target)
    copied = []
    if not source.is_dir():
        return copied
    for item in sorted(source.iterdir()):
        if not item.is_file() or item.name in _WRITTEN_BY_SAVE_PRETRAINED or item.name.endswith(_WEIGHT_SUFFIXES):
            continue
        shutil.copy2(item, target / item.name)
        copied.append(item.name)
    return copied


def save_hf(hf_model: nn.Module, state_dict: dict[str, torch.Tensor], out_dir: str | os.PathLike,
            source_dir: Optional[str | os.PathLike] = None) -> Path:
    """Write ``state_dict`` (module names, full tensors) in ``save_pretrained`` format (rank 0 only).

    ``hf_model`` supplies the config and transformers' checkpoint key conventions; processor
    and tokenizer files are copied from ``source_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(str(out_dir), state_dict=state_dict)
    if source_dir is not None:
        copy_processor_files(source_dir, out_dir)
    return out_dir
