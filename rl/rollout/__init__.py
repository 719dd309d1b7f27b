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
        raise NotImplementedError(
            "rollout.backend='vllm' is not yet available in this build; use rollout.backend=hf"
        )
    raise ValueError(f"unknown rollout.backend {cfg.backend!r}; expected 'hf' or 'vllm'")
