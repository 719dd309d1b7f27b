"""HF export of any kept checkpoint of a run, in one CPU process (no Ray, no process group, no GPU).

``python -m launch.export RUN_DIR [--step K] [--out DIR]`` calls :func:`export_checkpoint`:

1. the step: ``K``, or the newest complete checkpoint of the run (:class:`rl.checkpoint.CheckpointManager`:
   only steps stamped with the run's id and carrying the ``COMPLETE`` marker count);
2. the model skeleton: ``config.json``, ``generation_config.json`` and the processor files of the
   run's starting policy (:func:`find_base`), built on the ``meta`` device (no weights are read
   from it, no memory is allocated for them);
3. the weights: the ``model.*`` entries of the DCP shards in
   ``checkpoints/global_step_K/actor`` (written by the actor ranks with any world size; the
   optimizer entries are not read), merged with their LoRA adapters when the worker trained
   LoRA (``worker_state.json: uses_lora``; ``W + alpha / rank * B @ A`` with ``sft.lora.*``). A
   LoRA actor's checkpoint (``adapters_only``, ``actor.lora.rank > 0``) holds the adapters only:
   the frozen base weights are read from the starting policy (step 2) and merged with them;
4. the folder: written by the same writer as the run's own exports
   (:func:`rl.workers.state_io.save_hf`: ``save_pretrained`` key names, processor files only,
   normal file modes) into a temporary sibling that is renamed into place when complete.

The default output is ``RUN_DIR/exports/global_step_K``; ``RUN_DIR/export`` stays the final
export the run writes at its end (``trainer.export_hf``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from rl.checkpoint import CheckpointManager

log = logging.getLogger(__name__)

__all__ = ["ExportError", "EXPORTS_SUBDIR", "kept_steps", "select_step", "default_out_dir", "find_base",
           "read_dcp_model_state", "merge_lora", "merge_adapters_into_base", "export_checkpoint"]

#: Folder of the run directory that holds the exports of this tool (one ``global_step_<k>`` each).
EXPORTS_SUBDIR = "exports"
_MODEL_PREFIX = "model."


class ExportError(RuntimeError):
    """A bad export request: no such step, no starting policy, an occupied output folder, ..."""


def kept_steps(run_dir: str | os.PathLike) -> list[int]:
    """The run's steps with a complete checkpoint, ascending."""
    return CheckpointManager(run_dir).complete_steps()


def _describe_kept(run_dir: Path, kept: list[int]) -> str:
    if kept:
        return f"kept steps: {', '.join(map(str, kept))}"
    return (f"the run in {run_dir} has no complete checkpoint (checkpoints are saved every trainer.save_freq "
            "steps and at the end; trainer.keep_last_checkpoints sets how many are kept)")


def select_step(run_dir: str | os.PathLike, step: Optional[int] = None) -> int:
    """``step`` when it is a kept checkpoint of the run, else the newest one (``step`` None).

    Raises:
        ExportError: no run directory, no complete checkpoint, or ``step`` is not kept (the
            message lists the kept steps).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    kept = kept_steps(run_dir)
    if step is None:
        if not kept:
            raise ExportError(_describe_kept(run_dir, kept))
        return kept[-1]
    if step not in kept:
        path = CheckpointManager(run_dir).step_dir(step)
        why = "is incomplete (no COMPLETE marker)" if path.is_dir() else "is not kept"
        raise ExportError(f"step {step} of {run_dir} {why}; {_describe_kept(run_dir, kept)}")
    return step


def default_out_dir(run_dir: str | os.PathLike, step: int) -> Path:
    """``RUN_DIR/exports/global_step_<step>``."""
    return Path(run_dir) / EXPORTS_SUBDIR / f"global_step_{int(step)}"


def _read_run_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return data if isinstance(data, dict) else {}


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def find_base(run_dir: str | os.PathLike, base: Optional[str | os.PathLike] = None) -> Path:
    """The HF folder whose ``config.json`` / processor files describe the run's policy.

    ``base`` when given; else, from ``RUN_DIR/config.yaml``, ``model.path`` (when it exists
    here), the run's SFT cold start (``sft.output_dir``, or ``RUN_DIR/sft`` -- the run directory
    as found, so a run copied to another machine still works) or the tiny model it was built
    from (``RUN_DIR/tiny_init``). Only small files are read from it, never its weights.
    """
    run_dir = Path(run_dir)
    if base is not None:
        if not _is_model_folder(Path(base)):
            raise ExportError(f"--base {base} is not a HF model folder (no config.json)")
        return Path(base)
    cfg = _read_run_config(run_dir)
    candidates = []
    model_path = (cfg.get("model") or {}).get("path") or ""
    if model_path:
        candidates.append(Path(model_path))
    else:
        sft_dir = (cfg.get("sft") or {}).get("output_dir") or ""
        if sft_dir:
            candidates.append(Path(sft_dir))
        candidates += [run_dir / "sft", run_dir / "tiny_init"]
    for path in candidates:
        if _is_model_folder(path):
            return path
    tried = ", ".join(str(p) for p in candidates) or f"(no config.yaml in {run_dir})"
    raise ExportError(f"cannot find the run's starting policy (tried {tried}); pass --base DIR, a HF folder "
                      "with the model's config.json and tokenizer / processor files (weights are not needed)")


def read_dcp_model_state(model_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The full model tensors (module state-dict names) of a worker checkpoint, and its worker state.

    Reads only the ``model.*`` entries of the DCP shards, in one process without a process
    group (DCP reassembles the ranks' shards).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    from rl.workers.state_io import read_worker_state

    model_dir = Path(model_dir)
    try:
        worker_state = read_worker_state(model_dir)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ExportError(str(exc)) from None
    metadata = dcp.FileSystemReader(str(model_dir)).read_metadata()
    state = {key[len(_MODEL_PREFIX):]: torch.empty(meta.size, dtype=meta.properties.dtype)
             for key, meta in metadata.state_dict_metadata.items()
             if key.startswith(_MODEL_PREFIX) and isinstance(meta, TensorStorageMetadata)}
    if not state:
        raise ExportError(f"worker checkpoint {model_dir} holds no model tensors")
    with warnings.catch_warnings():   # "torch.distributed is ... uninitialized": loading in one process is the intent
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load({"model": state}, checkpoint_id=str(model_dir), no_dist=True)
    return state, worker_state


def merge_lora(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """peft LoRA entries merged into plain weights (``W + scaling * B @ A``; the ``base_model.model.``
    prefix removed), with the stream merge the workers use for their own exports."""
    from rl.workers.fsdp import merge_lora_stream

    prefixes = {name.split(".lora_A.")[0] for name in state if ".lora_A." in name}
    return dict(merge_lora_stream(state.items(), {prefix: scaling for prefix in prefixes}))


def merge_adapters_into_base(base: Path, adapters: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """The full state (module names) of the HF model in ``base`` with the adapters of an
    ``adapters_only`` checkpoint merged: ``X.weight = W + scaling * B @ A`` for every adapted ``X``."""
    from transformers import AutoModelForImageTextToText

    from rl.workers.lora import is_adapter_name

    if not (base / "model.safetensors").is_file() and not any(base.glob("model-*.safetensors")):
        raise ExportError(f"the checkpoint holds LoRA adapters only; their base weights are needed from {base} "
                          "(pass --base with the run's starting policy, weights included)")
    state = dict(AutoModelForImageTextToText.from_pretrained(base, dtype="auto").state_dict())
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in adapters.items():
        if not is_adapter_name(name):
            raise ExportError(f"an adapters-only checkpoint holds a non-adapter tensor {name!r}")
        prefix, kind = name.rsplit(".", 3)[0], name.rsplit(".", 3)[1]
        parts.setdefault(prefix.removeprefix("base_model.model."), {})[kind] = tensor
    for module, ab in parts.items():
        key = f"{module}.weight"
        if key not in state or set(ab) != {"lora_A", "lora_B"}:
            raise ExportError(f"adapter of {module} does not fit the model of {base} (or lacks lora_A / lora_B)")
        base_weight = state[key]
        delta = (ab["lora_B"].float() @ ab["lora_A"].float()) * scaling
        state[key] = (base_weight.float() + delta).to(base_weight.dtype)
    return state


def _lora_scaling(run_dir: Path) -> float:
    lora = ((_read_run_config(run_dir).get("sft") or {}).get("lora") or {})
    if not lora.get("rank"):
        raise ExportError(f"the checkpoint was trained with LoRA but {run_dir / 'config.yaml'} has no sft.lora.rank")
    return float(lora.get("alpha", lora["rank"])) / float(lora["rank"])


def _skeleton(base: Path, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The HF model of ``base``'s config on the meta device, holding ``state`` (assigned, not copied)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig

    config = AutoConfig.from_pretrained(base, local_files_only=True)
    dtypes = [t.dtype for t in state.values() if t.is_floating_point()]
    dtype = max(set(dtypes), key=dtypes.count) if dtypes else torch.float32
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    if (base / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(base, local_files_only=True)
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.unexpected_keys:
        raise ExportError(f"the checkpoint does not fit the model of {base}: it has tensors the model lacks, e.g. "
                          f"{sorted(result.unexpected_keys)[:3]} (pass --base with the run's starting policy)")
    model.tie_weights()
    missing = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if missing:
        raise ExportError(f"the checkpoint does not fit the model of {base}: {len(missing)} tensors are missing, "
                          f"e.g. {missing[:3]} (pass --base with the run's starting policy)")
    return model


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise ExportError(f"output folder {out} exists and is not empty; pass --force to replace it or --out DIR")


def export_checkpoint(run_dir: str | os.PathLike, step: Optional[int] = None, out: Optional[str | os.PathLike] = None,
                      base: Optional[str | os.PathLike] = None, force: bool = False,
                      progress: Callable[[str], None] = log.info) -> Path:
    """Write checkpoint ``step`` (default: the newest) of the run in ``run_dir`` as a HF folder; returns it.

    Args:
        out: the folder (default :func:`default_out_dir`); must be absent or empty unless ``force``.
        base: HF folder of the starting policy (default :func:`find_base`).
        progress: receives one line per stage.

    Raises:
        ExportError: see :func:`select_step`, :func:`find_base`; an occupied ``out``; a checkpoint
            that does not fit the base model.
    """
    from rl.workers.state_io import save_hf

    run_dir = Path(run_dir)
    step = select_step(run_dir, step)
    out = Path(out) if out is not None else default_out_dir(run_dir, step)
    _prepare_out(out, force)
    base = find_base(run_dir, base)
    model_dir = CheckpointManager(run_dir).model_dir(step)
    progress(f"step {step}: reading the weights in {model_dir}")
    state, worker = read_dcp_model_state(model_dir)
    progress(f"read {len(state)} tensors ({sum(t.numel() for t in state.values()):,} parameters; "
             f"written by {worker.get('world_size', '?')} {worker.get('role', '?')} rank(s) at step "
             f"{worker.get('global_step', '?')})")
    if worker.get("adapters_only"):
        scaling = float(worker["lora"]["scaling"])
        state = merge_adapters_into_base(base, state, scaling)
        progress(f"merged the LoRA adapters (scaling {scaling:g}) into the base weights of {base}")
    elif worker.get("uses_lora"):
        scaling = _lora_scaling(run_dir)
        state = merge_lora(state, scaling)
        progress(f"merged the LoRA adapters (scaling {scaling:g})")
    progress(f"model skeleton, config and processor files from {base}")
    model = _skeleton(base, state)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        save_hf(model, model.state_dict(), tmp, base)        # also gives the folder (mkdtemp: 0700) normal modes
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    progress(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return out
