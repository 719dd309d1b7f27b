"""How a policy worker loads its model and computes response log-probs.

The default hooks use ``rl.models`` (Qwen2.5-VL: ``load_policy`` and ``policy_logprobs``
over an ``EncodedBatch``). Tests and other model families pass their own
:class:`ModelHooks`; the worker only needs these two callables and a batch that supports
``len(batch)``, ``batch.response_mask`` (B, R) and ``batch.select(indices)`` (rows by index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from rl.config import LoraConfig, ModelConfig

__all__ = ["ModelHooks", "default_hooks", "apply_lora", "language_model_targets", "take_rows"]


LoadFn = Callable[[str, ModelConfig], nn.Module]
# (model, batch, temperature, with_entropy) -> (logp (B, R), entropy (B, R) | None), differentiable
LogprobFn = Callable[[nn.Module, Any, float, bool], tuple[torch.Tensor, Optional[torch.Tensor]]]


@dataclass(frozen=True)
class ModelHooks:
    load: LoadFn
    logprobs: LogprobFn
    # Same outputs from the rows packed without padding (``actor.packing``); None: not supported.
    packed_logprobs: Optional[LogprobFn] = None


def _load_with_rl_models(path: str, model_cfg: ModelConfig) -> nn.Module:
    from rl.models.loading import load_policy

    loaded = load_policy(path, dtype=model_cfg.dtype, attn_implementation=model_cfg.attn_implementation, device="cpu")
    return loaded[0] if isinstance(loaded, tuple) else loaded


def _logprobs_with_rl_models(model: nn.Module, batch: Any, temperature: float, with_entropy: bool):
    from rl.models.logprobs import policy_logprobs

    return policy_logprobs(model, batch, temperature=temperature, with_entropy=with_entropy)


def _packed_logprobs_with_rl_models(model: nn.Module, batch: Any, temperature: float, with_entropy: bool):
    from rl.models.logprobs import packed_policy_logprobs

    return packed_policy_logprobs(model, batch, temperature=temperature, with_entropy=with_entropy)


def default_hooks() -> ModelHooks:
    """Qwen2.5-VL through ``rl.models``."""
    return ModelHooks(load=_load_with_rl_models, logprobs=_logprobs_with_rl_models,
                      packed_logprobs=_packed_logprobs_with_rl_models)


def take_rows(batch: Any, indices: Sequence[int]) -> Any:
    """Rows ``indices`` of a batch (``batch.select``)."""
    return batch.select(list(indices))


#: Module-name components that mark a vision tower (Qwen2.5-VL: ``model.visual``).
VISION_TOWER_NAMES = ("visual", "vision_tower", "vision_model")


def language_model_targets(model: nn.Module, targets: Sequence[str]) -> list[str]:
    """Full names of the modules whose last name component is in ``targets``, outside the vision
    tower (:data:`VISION_TOWER_NAMES`); what vLLM's LoRA serves (it adapts the language model)."""
    wanted = set(targets)
    return [name for name, _ in model.named_modules()
            if name.rsplit(".", 1)[-1] in wanted and not set(name.split(".")) & set(VISION_TOWER_NAMES)]


def apply_lora(model: nn.Module, cfg: LoraConfig, language_model_only: bool = False) -> nn.Module:
    """Wrap ``model`` with a peft LoRA adapter (base frozen, adapters trainable).

    ``language_model_only``: adapters on the target modules of the language model only (the
    vision tower stays frozen; :func:`language_model_targets`), as the GRPO actor uses them.
    Call with the same torch seed on every rank: the adapters' random initialisation must
    agree before the model is sharded.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    if cfg.rank <= 0:
        raise ValueError(f"LoRA rank must be > 0, got {cfg.rank}")
    targets = list(cfg.target_modules)
    if language_model_only:
        targets = language_model_targets(model, targets)
        if not targets:
            raise ValueError(f"no module of the language model matches LoRA target_modules {list(cfg.target_modules)}")
    peft_cfg = PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets)
    return get_peft_model(model, peft_cfg)


def unwrap_hf(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
