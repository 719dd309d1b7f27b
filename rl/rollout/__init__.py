"""Rollout engines behind one interface (:class:`RolloutBackend`), chosen by ``rollout.backend``."""

from __future__ import annotations

import os

from rl.config import RolloutConfig
from rl.rollout.base import FINISH_REASONS, GeneratedResponse, RolloutBackend, RolloutOutput, SamplingParams

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
) -> RolloutBackend:
    """The rollout engine named by ``cfg.backend`` serving the checkpoint at ``model_path``."""
    if cfg.backend == "hf":
        from rl.rollout.hf import HFRolloutBackend

        return HFRolloutBackend.from_pretrained(
            model_path, device=device, dtype=dtype, attn_implementation=attn_implementation,
            micro_batch_size=cfg.micro_batch_size, seed=seed,
        )
    if cfg.backend == "vllm":
        from rl.rollout.vllm import VLLMRolloutBackend

        return VLLMRolloutBackend.from_config(model_path, cfg, device=device, dtype=dtype, seed=seed)
    raise ValueError(f"unknown rollout.backend {cfg.backend!r}; expected 'hf' or 'vllm'")
