"""Rollout engines behind one interface (:class:`RolloutBackend`), chosen by ``rollout.backend``.

The names of :mod:`rl.rollout.base` are imported on first use (PEP 562), so that importing
the light :mod:`rl.rollout.config` (the ``rollout`` config section) does not import torch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rl.rollout.config import RolloutConfig

if TYPE_CHECKING:  # pragma: no cover
    from rl.rollout.base import RolloutBackend

_BASE_NAMES = ("FINISH_REASONS", "GeneratedResponse", "RolloutBackend", "RolloutOutput", "SamplingParams")


def __getattr__(name: str) -> Any:
    if name not in _BASE_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rl.rollout import base

    globals()[name] = getattr(base, name)
    return globals()[name]


__all__ = [
    "FINISH_REASONS",
    "GeneratedResponse",
    "RolloutBackend",
    "RolloutOutput",
    "SamplingParams",
    "build_rollout_backend",
]


def build_rollout_backend(
    cfg: RolloutConfig,
    model_path: str | os.PathLike,
    device: str = "cpu",
    dtype: str = "float32",
    attn_implementation: str = "sdpa",
    seed: int = 0,
    lora: Any = None,
) -> RolloutBackend:
    """The rollout engine named by ``cfg.backend`` serving the checkpoint at ``model_path``.

    ``lora``: the actor's ``LoraConfig`` when the engine serves its adapter (vLLM's LoRA, GPU runs;
    :func:`rl.workers.lora.serves_adapter`); None: the engine receives merged full weights."""
    if cfg.backend == "hf":
        if lora is not None:
            raise ValueError("the transformers rollout backend takes merged weights, not a LoRA adapter")
        from rl.rollout.hf import HFRolloutBackend

        return HFRolloutBackend.from_pretrained(
            model_path, device=device, dtype=dtype, attn_implementation=attn_implementation,
            micro_batch_size=cfg.micro_batch_size, seed=seed,
        )
    if cfg.backend == "vllm":
        from rl.rollout.vllm import VLLMRolloutBackend

        return VLLMRolloutBackend.from_config(model_path, cfg, device=device, dtype=dtype, seed=seed, lora=lora)
    raise ValueError(f"unknown rollout.backend {cfg.backend!r}; expected 'hf' or 'vllm'")
