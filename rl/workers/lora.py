"""LoRA of the policy workers: which adapter a role trains, its parameter counts, the adapter tensors.

The GRPO actor with ``actor.lora.rank > 0`` (and the SFT worker with ``sft.lora.rank > 0``) wraps
its model with peft (:func:`rl.workers.model_hooks.apply_lora`); only the adapters are trainable,
so the optimizer holds only them. What leaves the worker:

* rollout engines and HF exports: merged full weights ``W + alpha / rank * B @ A`` under the
  plain module names (:func:`rl.workers.fsdp.merge_lora_stream`), the same names and shapes as
  full fine-tuning;
* vLLM's LoRA serving (GPU): the adapter itself (:func:`adapter_tensors`: peft's saved names,
  ``base_model.model.<module>.lora_A.weight`` (r, in) / ``lora_B.weight`` (out, r));
* checkpoints of the actor: the adapters and their optimizer state only (the frozen base is the
  run's starting policy, loaded again at resume).
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Optional

import torch
from torch import nn

from rl.config import ActorConfig, LoraConfig, SFTConfig

__all__ = ["serves_adapter", "lora_reference", "lora_settings", "parameter_counts", "is_adapter_name", "peft_save_name", "adapter_tensors",
           "lora_state"]

_ADAPTER_KEY = re.compile(r"\.(lora_A|lora_B)\.[^.]+\.weight$")


def serves_adapter(cfg: Any) -> bool:
    """Whether the run's rollout engines serve the LoRA actor's adapter (vLLM on GPU) instead of
    receiving merged full weights (the transformers backend, vLLM on CPU)."""
    return cfg.actor.lora.rank > 0 and cfg.rollout.backend == "vllm" and cfg.trainer.device == "cuda"


def lora_reference(cfg: Any) -> bool:
    """Whether the actor computes the reference log-probs itself, adapters disabled (LoRA with the KL
    loss: no reference workers are placed, :func:`rl.placement.roles_for`)."""
    return cfg.actor.lora.rank > 0 and cfg.actor.use_kl_loss and cfg.actor.kl_loss_coef > 0


def lora_settings(role: str, actor_cfg: ActorConfig, sft_cfg: Optional[SFTConfig]) -> Optional[LoraConfig]:
    """The LoRA settings a worker of ``role`` trains with (None: full fine-tuning, or a frozen reference)."""
    cfg = sft_cfg.lora if role == "sft" and sft_cfg is not None else actor_cfg.lora if role == "actor" else None
    return cfg if cfg is not None and cfg.rank > 0 else None


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``{"trainable": ..., "total": ...}`` parameter counts (global: DTensor shapes are the full ones)."""
    total = trainable = 0
    for param in model.parameters():
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return {"trainable": trainable, "total": total}


def is_adapter_name(name: str) -> bool:
    """Whether a state-dict name is a LoRA A / B matrix (``....lora_A.<adapter>.weight``)."""
    return _ADAPTER_KEY.search(name) is not None


def peft_save_name(name: str) -> str:
    """State-dict name -> peft's saved adapter name (the adapter name dropped):
    ``base_model.model.X.lora_A.default.weight`` -> ``base_model.model.X.lora_A.weight``."""
    return _ADAPTER_KEY.sub(lambda m: f".{m.group(1)}.weight", name)


def adapter_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(peft saved name, full CPU tensor)`` of every LoRA A / B matrix. Collective (an all-gather
    per sharded tensor: every rank must exhaust the iterator)."""
    from rl.workers.fsdp import full_tensor

    for name, tensor in model.state_dict().items():
        if is_adapter_name(name):
            yield peft_save_name(name), full_tensor(tensor)


def lora_state(cfg: LoraConfig, target_modules: Any) -> dict[str, Any]:
    """What a checkpoint records about its adapters (rank, alpha, scaling, the adapted modules)."""
    return {"rank": cfg.rank, "alpha": cfg.alpha, "scaling": cfg.alpha / cfg.rank,
            "target_modules": sorted(target_modules) if target_modules else []}
