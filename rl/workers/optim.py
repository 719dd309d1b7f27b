"""Optimizer, learning-rate schedule and gradient clipping for sharded (FSDP2) parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.distributed.tensor import DTensor
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["OptimSettings", "build_optimizer", "build_scheduler", "clip_gradients"]


@dataclass(frozen=True)
class OptimSettings:
    """What a worker's optimizer needs, taken from ``actor.optim`` or ``sft``."""

    lr: float
    weight_decay: float
    betas: tuple[float, float]
    lr_scheduler: str  # constant | cosine
    warmup_ratio: float
    grad_clip: float  # <= 0: no clipping (the norm is still reported)
    total_steps: int  # scheduler steps over the whole run (one per update call)


def build_optimizer(params: Iterable[nn.Parameter], settings: OptimSettings) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (DTensor shards under FSDP2)."""
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(
        trainable, lr=settings.lr, betas=tuple(settings.betas), weight_decay=settings.weight_decay
    )


def build_scheduler(optimizer: torch.optim.Optimizer, settings: OptimSettings) -> LambdaLR:
    """Linear warmup over ``round(warmup_ratio * total_steps)`` steps, then constant or cosine to 0.

    Uses verl's schedule helpers (``verl.utils.torch_functional``); the scheduler is stepped
    once per update call (one training step), as in verl's workers.
    """
    from verl.utils.torch_functional import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    if settings.total_steps <= 0:
        raise ValueError(f"total_steps must be > 0 for the lr schedule, got {settings.total_steps}")
    warmup = int(round(settings.warmup_ratio * settings.total_steps))
    if settings.lr_scheduler == "constant":
        return get_constant_schedule_with_warmup(optimizer, num_warmup_steps=warmup)
    if settings.lr_scheduler == "cosine":
        return get_cosine_schedule_with_warmup(
            optimizer, num_warmup_steps=warmup, num_training_steps=settings.total_steps
        )
    raise ValueError(f"unknown lr_scheduler {settings.lr_scheduler!r}; expected 'constant' or 'cosine'")


def clip_gradients(params: Sequence[nn.Parameter], max_norm: float) -> float:
    """Clip the global gradient norm to ``max_norm`` (no clipping when <= 0). Collective.

    Returns the total norm before clipping (over all shards of all ranks); ``inf``/``nan``
    when a gradient is not finite (the caller then skips the step).
    """
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    limit = max_norm if max_norm > 0 else math.inf
    total = torch.nn.utils.clip_grad_norm_(grads, max_norm=limit)
    if isinstance(total, DTensor):
        total = total.full_tensor()
    return float(total)
