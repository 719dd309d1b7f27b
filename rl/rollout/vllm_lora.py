"""vLLM serving a LoRA actor's adapter (``actor.lora.rank > 0`` with ``rollout.backend=vllm`` on GPU).

Instead of merged full weights, each weight sync sends the adapter (peft's saved names,
``base_model.model.<module>.lora_A.weight`` (r, in) and ``...lora_B.weight`` (out, r)); the
backend writes it as a peft adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
and serves it through vLLM's documented LoRA API: the engine is built with ``enable_lora=True`` and
``max_lora_rank`` (:func:`lora_engine_kwargs`), and every request of a call carries
``lora_request=LoRARequest(lora_name, lora_int_id, lora_path)`` (:meth:`AdapterPublisher.request`).
Each sync publishes a new name and id (vLLM caches an adapter by id and compares requests by
name), and the previous one is removed from the engine (``LLMEngine.remove_lora``). The engine's
base weights stay those of the starting policy, which is the LoRA actor's frozen base.

Before the first sync no adapter exists and requests go to the base model, which is the actor's
policy then (peft initialises ``B = 0``). No vLLM import at module level: the helpers are tested
without vLLM.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from rl.config import LoraConfig

__all__ = ["VLLM_MAX_LORA_RANKS", "lora_engine_kwargs", "adapter_config", "write_adapter", "AdapterPublisher"]

#: ``max_lora_rank`` values vLLM accepts (its ``LoRAConfig``).
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
_PREFIX = "base_model.model."
_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


def lora_engine_kwargs(rank: int) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments of an engine serving one adapter of rank ``rank``."""
    fitting = [r for r in VLLM_MAX_LORA_RANKS if r >= rank]
    if rank < 1 or not fitting:
        raise ValueError(f"vLLM serves LoRA ranks 1..{VLLM_MAX_LORA_RANKS[-1]}, got {rank}")
    return {"enable_lora": True, "max_lora_rank": fitting[0], "max_loras": 1}


def _module_of(name: str) -> str:
    if not name.startswith(_PREFIX) or not name.endswith(_SUFFIXES):
        raise ValueError(f"not a peft adapter tensor name: {name!r} (expected {_PREFIX}<module>.lora_A|B.weight)")
    return name[len(_PREFIX):-len(_SUFFIXES[0])]


def adapter_config(cfg: LoraConfig, modules: Iterable[str], base_path: str = "") -> dict[str, Any]:
    """``adapter_config.json`` of the adapter: rank, alpha, the short names of the adapted modules."""
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": int(cfg.rank), "lora_alpha": int(cfg.alpha),
            "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": str(base_path),
            "target_modules": sorted({m.rsplit(".", 1)[-1] for m in modules})}


def write_adapter(directory: str | Path, tensors: dict[str, torch.Tensor], cfg: LoraConfig,
                  base_path: str = "") -> Path:
    """A peft adapter folder of ``tensors`` (peft saved names); every module needs its A and B."""
    from safetensors.torch import save_file

    modules: dict[str, set[str]] = {}
    for name in tensors:
        modules.setdefault(_module_of(name), set()).add(name.rsplit(".", 2)[-2])
    incomplete = sorted(m for m, parts in modules.items() if parts != {"lora_A", "lora_B"})
    if not modules or incomplete:
        raise ValueError(f"adapter incomplete: modules without both lora_A and lora_B: {incomplete or 'all'}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
              str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(adapter_config(cfg, modules, base_path), indent=2))
    return directory


class AdapterPublisher:
    """The adapters of successive weight syncs: :meth:`add` collects one sync's tensors, :meth:`publish`
    writes them to a fresh folder under ``root`` and makes them the adapter :meth:`request` names."""

    def __init__(self, cfg: LoraConfig, base_path: str = "", root: Optional[str | Path] = None):
        self.cfg, self.base_path = cfg, str(base_path)
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="vrs-lora-"))
        self.version = 0             # id of the published adapter (0: none yet, requests go to the base model)
        self.path: Optional[Path] = None
        self._pending: dict[str, torch.Tensor] = {}

    @property
    def open(self) -> bool:
        return bool(self._pending)

    def add(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        count = 0
        for name, tensor in named_tensors:
            _module_of(name)
            self._pending[name] = tensor
            count += 1
        return count

    def publish(self) -> tuple[int, Optional[int]]:
        """Write the collected adapter; returns (its id, the id it replaces or None)."""
        previous, old_path = (self.version or None), self.path
        path = write_adapter(self.root / f"v{self.version + 1}", self._pending, self.cfg, self.base_path)
        self._pending = {}
        self.version += 1
        self.path = path
        if old_path is not None:
            shutil.rmtree(old_path, ignore_errors=True)
        return self.version, previous

    @property
    def name(self) -> str:
        return f"policy-v{self.version}"

    def request(self) -> Any:
        """``vllm.lora.request.LoRARequest`` of the published adapter (None before the first sync)."""
        if not self.version:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(lora_name=self.name, lora_int_id=self.version, lora_path=str(self.path))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
