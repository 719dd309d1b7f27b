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

__all__ = ["WORKER_STATE_FILE", "PROCESSOR_FILES", "save_dcp", "load_dcp", "read_worker_state", "save_hf",
           "copy_processor_files", "normalize_modes"]

WORKER_STATE_FILE = "worker_state.json"
#: Tokenizer, processor and chat-template files of a HF model folder (``fnmatch`` patterns): what an
#: export copies from the starting policy besides the files ``save_pretrained`` writes (config.json,
#: generation_config.json, weights). Nothing else is copied: run markers such as ``sft_complete.json``
#: or ``tiny_build.json`` stay out of exports.
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "chat_template.json", "chat_template.jinja",
                   "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json")
_PROCESSOR_DIRS = ("additional_chat_templates",)


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
    trainable_only: bool = False,
) -> Path:
    """Save model (+ optimizer) shards with DCP and ``worker_state`` as JSON. Collective.

    ``trainable_only``: the model's frozen parameters are left out (LoRA: the adapters only)."""
    directory = Path(directory)
    if _rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
    _barrier()
    optimizers = [optimizer] if optimizer is not None else []
    model_sd, optim_sd = _get_state(model, optimizers, trainable_only)
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


def _get_state(model: nn.Module, optimizers: list, trainable_only: bool) -> tuple[dict, dict]:
    """Model and optimizer state dicts; ``trainable_only`` keeps only the trainable parameters (a
    frozen tied ``lm_head`` too, which torch's ``ignore_frozen_params`` misses: it is no parameter name)."""
    model_sd, optim_sd = get_state_dict(model, optimizers, options=StateDictOptions(ignore_frozen_params=trainable_only))
    if trainable_only:
        trainable = {name for name, param in model.named_parameters() if param.requires_grad}
        model_sd = {name: value for name, value in model_sd.items() if name in trainable}
    return model_sd, optim_sd


def load_dcp(
    directory: str | os.PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer],
    trainable_only: bool = False,
) -> dict[str, Any]:
    """Restore model (+ optimizer) shards saved by :func:`save_dcp`; returns the worker state. Collective.

    ``trainable_only``: as saved with it (the frozen parameters keep their current values).

    Raises:
        FileNotFoundError: the directory, its DCP metadata or its worker_state.json is missing.
        RuntimeError: the checkpoint cannot be read or does not match the model/optimizer.
    """
    directory = Path(directory)
    worker_state = read_worker_state(directory)
    optimizers = [optimizer] if optimizer is not None else []
    model_sd, optim_sd = _get_state(model, optimizers, trainable_only)
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
            options=StateDictOptions(strict=not trainable_only, ignore_frozen_params=trainable_only),
        )
    except (Exception, CheckpointException) as exc:  # CheckpointException derives from BaseException
        raise RuntimeError(f"cannot restore worker checkpoint {directory}: {exc}") from exc
    return worker_state


def copy_processor_files(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Copy the tokenizer / processor / chat-template files (:data:`PROCESSOR_FILES`, and an
    ``additional_chat_templates/`` folder) of a HF model folder; returns their names."""
    source, target = Path(source), Path(target)
    copied = []
    if not source.is_dir():
        return copied
    for item in sorted(source.iterdir()):
        if item.is_file() and item.name in PROCESSOR_FILES:
            shutil.copyfile(item, target / item.name)
        elif item.is_dir() and item.name in _PROCESSOR_DIRS:
            shutil.copytree(item, target / item.name, copy_function=shutil.copyfile, dirs_exist_ok=True)
        else:
            continue
        copied.append(item.name)
    return copied


def normalize_modes(directory: str | os.PathLike) -> None:
    """Give ``directory`` and everything in it the modes of freshly created files (0644 / 0755 under
    the usual umask 022). ``save_pretrained`` writes ``model.safetensors`` through a private
    temporary file (0600), and ``tempfile.mkdtemp`` folders are 0700."""
    umask = os.umask(0)
    os.umask(umask)
    root = Path(directory)
    os.chmod(root, 0o777 & ~umask)
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def save_hf(hf_model: nn.Module, state_dict: dict[str, torch.Tensor], out_dir: str | os.PathLike,
            source_dir: Optional[str | os.PathLike] = None) -> Path:
    """Write ``state_dict`` (module names, full tensors) in ``save_pretrained`` format (rank 0 only).

    The one writer of HF folders (the final export, evaluation exports, the SFT checkpoint,
    ``python -m launch.export``): ``hf_model`` supplies the config, the generation config and
    transformers' checkpoint key conventions (the same key names ``save_pretrained`` writes);
    :data:`PROCESSOR_FILES` are copied from ``source_dir``; file modes are normalised
    (:func:`normalize_modes`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(str(out_dir), state_dict=state_dict)
    if source_dir is not None:
        copy_processor_files(source_dir, out_dir)
    normalize_modes(out_dir)
    return out_dir
