"""Weight sync inside vLLM's worker processes: a ``worker_extension_cls`` plus bucket packing.

vLLM adds :class:`VRSWorkerExtension` to the bases of its worker class
(``LLM(worker_extension_cls="rl.rollout.vllm_worker_ext.VRSWorkerExtension")``); the backend
calls its methods by name with ``llm.collective_rpc(method, args=...)``, so they run in every
tensor-parallel worker, in-process or in vLLM's worker processes. One sync is::

    vrs_begin_weight_update()            once
    vrs_load_weights(payload)            once per bucket (HF checkpoint names)
    vrs_finish_weight_update() -> info   once: post-processing, tied weights, completeness check

Two loading paths, chosen by the device the model lives on:

* ``"layerwise"`` (CPU): vLLM's CPU linear layers repack their weights after loading, so a
  plain ``model.load_weights`` on the serving model does not work there. vLLM's in-place
  reload machinery (``vllm.model_executor.model_loader.reload``: what
  ``Worker.reload_weights(weights_iterator=...)`` runs in one call) is opened once, fed
  bucket by bucket, and closed once: every layer is re-processed as soon as all of its
  tensors arrived, so a fused layer (qkv, gate/up) whose parts span two buckets is still
  loaded whole. (Calling ``reload_weights`` once per bucket would process such a layer with
  half of its tensors and warn about every layer missing from the bucket.) Tied weights
  (``lm_head`` = ``embed_tokens``) are then re-processed for every module sharing them, since
  the reload only re-runs the processing of one owner.
* ``"load_weights"`` (GPU, vLLM 0.24 as in verl 0.9.1's ``vLLMColocateWorkerExtension``):
  ``model.load_weights(bucket)`` per bucket, ``process_weights_after_loading`` once at the end.

Transport: a bucket crosses into the worker as safetensors bytes (the in-process ``uni``
executor, or any executor) or as a safetensors file path (vLLM worker processes on one host:
the bytes are not pushed through vLLM's RPC queue). No vLLM import at module level: the
packing helpers are used (and unit-tested) without vLLM.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

__all__ = [
    "TRANSPORTS",
    "pack_bucket",
    "unpack_bucket",
    "discard_payload",
    "VRSWorkerExtension",
    "WORKER_EXTENSION",
]

TRANSPORTS = ("bytes", "file")
WORKER_EXTENSION = f"{__name__}.VRSWorkerExtension"


def _unshared(named: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, detached tensors by name; a tensor sharing storage with an earlier one is
    cloned (safetensors refuses shared storage, e.g. a tied ``lm_head`` beside ``embed_tokens``)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in named:
        if name in out:
            raise ValueError(f"weight bucket names {name!r} twice")
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key in seen and t.numel() > 0:
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[name] = t
    return out


def pack_bucket(
    named: Iterable[tuple[str, torch.Tensor]], transport: str = "bytes", tmp_dir: Optional[str | os.PathLike] = None
) -> dict[str, Any]:
    """Serialise ``(name, tensor)`` pairs for :meth:`VRSWorkerExtension.vrs_load_weights`.

    ``transport="bytes"``: ``{"transport": "bytes", "data": <safetensors bytes>, "count": k,
    "names": [...]}``; ``"file"``: the same bytes written to a new file in ``tmp_dir`` (default:
    the system temp dir), ``{"transport": "file", "path": str, ...}``; the receiver deletes it.
    dtypes, shapes and the order of the pairs are preserved exactly.
    """
    from safetensors.torch import save

    if transport not in TRANSPORTS:
        raise ValueError(f"unknown weight transport {transport!r}; expected one of {TRANSPORTS}")
    tensors = _unshared(named)
    data = save(tensors)
    names = list(tensors)  # safetensors sorts by name; the sender's order is kept (layers arrive whole)
    if transport == "bytes":
        return {"transport": "bytes", "data": data, "count": len(tensors), "names": names}
    directory = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"vrs-weights-{os.getpid()}-{uuid.uuid4().hex}.safetensors"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return {"transport": "file", "path": str(path), "count": len(tensors), "names": names}


def unpack_bucket(payload: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    """Inverse of :func:`pack_bucket` (does not delete a file payload; see :func:`discard_payload`)."""
    from safetensors.torch import load, load_file

    transport = payload.get("transport")
    if transport == "bytes":
        tensors = load(payload["data"])
    elif transport == "file":
        tensors = load_file(payload["path"])
    else:
        raise ValueError(f"weight payload has unknown transport {transport!r}")
    if len(tensors) != payload.get("count", len(tensors)):
        raise ValueError(f"weight payload holds {len(tensors)} tensors, expected {payload['count']}")
    names = payload.get("names") or list(tensors)
    return [(name, tensors[name]) for name in names]


def discard_payload(payload: dict[str, Any]) -> None:
    """Delete the file of a ``"file"`` payload (no-op otherwise)."""
    if payload.get("transport") == "file":
        Path(payload["path"]).unlink(missing_ok=True)


class VRSWorkerExtension:
    """Methods mixed into vLLM's worker (``self`` is the worker: ``model_runner``, ``vllm_config``).

    State between the three calls of a sync lives on the worker (``_vrs_*`` attributes).
    """

    def _vrs_model(self) -> torch.nn.Module:
        runner = self.model_runner
        return runner.get_model() if hasattr(runner, "get_model") else runner.model

    def _vrs_mode(self) -> str:
        model = self._vrs_model()
        param = next(model.parameters())
        return "layerwise" if param.device.type == "cpu" else "load_weights"

    def vrs_begin_weight_update(self) -> str:
        """Open a sync; returns the loading path (``"layerwise"`` or ``"load_weights"``)."""
        if getattr(self, "_vrs_open", False):
            raise RuntimeError("a weight update is already open in this vLLM worker")
        mode = self._vrs_mode()
        model = self._vrs_model()
        if mode == "layerwise":
            from vllm.config import set_current_vllm_config
            from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

            with set_current_vllm_config(self.vllm_config):
                initialize_layerwise_reload(model)
        self._vrs_open = True
        self._vrs_mode_open = mode
        self._vrs_loaded: set[str] = set()
        self._vrs_received = 0
        return mode

    def vrs_load_weights(self, payload: dict[str, Any]) -> int:
        """Load one bucket (see :func:`pack_bucket`); returns the number of tensors received."""
        if not getattr(self, "_vrs_open", False):
            raise RuntimeError("vrs_load_weights called outside vrs_begin_weight_update / vrs_finish_weight_update")
        try:
            weights = unpack_bucket(payload)
        finally:
            discard_payload(payload)
        model = self._vrs_model()
        if self._vrs_mode_open == "layerwise":
            from vllm.config import set_current_vllm_config

            with set_current_vllm_config(self.vllm_config):
                loaded = model.load_weights(iter(weights))
        else:
            loaded = model.load_weights(iter(weights))
        if loaded:
            self._vrs_loaded.update(loaded)
        self._vrs_received += len(weights)
        return len(weights)

    def _vrs_refresh_tied(self, model: torch.nn.Module) -> list[str]:
        """Re-run the weight processing of every module whose parameter is shared with another
        module (a tied ``lm_head``): the layerwise reload only re-processes one of the owners."""
        owners: dict[int, list[tuple[str, torch.nn.Module]]] = {}
        for mod_name, module in model.named_modules():
            for param in module.parameters(recurse=False):
                owners.setdefault(id(param), []).append((mod_name, module))
        refreshed = []
        for group in owners.values():
            if len(group) < 2:
                continue
            for mod_name, module in group:
                method = getattr(module, "quant_method", None)
                process = getattr(method, "process_weights_after_loading", None)
                if callable(process):
                    process(module)
                    refreshed.append(mod_name)
        return refreshed

    def vrs_finish_weight_update(self) -> dict[str, Any]:
        """Close the sync: finalize loading, refresh tied weights, check every parameter got a value.

        Returns ``{"mode", "received", "loaded", "refreshed"}``. Raises RuntimeError naming the
        parameters that received no weight (a partial sync would serve a mix of old and new
        weights).
        """
        if not getattr(self, "_vrs_open", False):
            raise RuntimeError("vrs_finish_weight_update called without an open weight update")
        model = self._vrs_model()
        mode = self._vrs_mode_open
        self._vrs_open = False
        refreshed: list[str] = []
        if mode == "layerwise":
            from vllm.config import set_current_vllm_config
            from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

            with set_current_vllm_config(self.vllm_config):
                finalize_layerwise_reload(model, self.vllm_config.model_config)
                refreshed = self._vrs_refresh_tied(model)
        else:
            from vllm.model_executor.model_loader.utils import process_weights_after_loading

            process_weights_after_loading(model, self.vllm_config.model_config, self.device)
        expected = {name for name, _ in model.named_parameters()}
        missing = sorted(expected - self._vrs_loaded) if self._vrs_loaded else sorted(expected)
        # The encoder / mm caches are reset by the engine (LLM.reset_mm_cache and
        # LLMEngine.reset_encoder_cache), which clears the scheduler's encoder-cache bookkeeping
        # together with each runner's cache; clearing only the runner's here desynchronises them
        # ("Encoder cache miss" on the next image prompt).
        if missing:
            raise RuntimeError(
                f"weight update left {len(missing)} of {len(expected)} vLLM parameters without new values "
                f"(first: {missing[:5]}); send every weight of the policy"
            )
        return {"mode": mode, "received": self._vrs_received, "loaded": len(self._vrs_loaded), "refreshed": refreshed}

    def vrs_reset_encoder_cache(self) -> None:
        """Clear this worker's encoder cache (fallback for engines without
        ``LLMEngine.reset_encoder_cache``, whose scheduler then holds no encoder-cache state)."""
        self.model_runner.reset_encoder_cache()
