"""The ``actor`` config section: GRPO policy update, its optimizer and FSDP sharding.

Imports nothing heavy; the choice lists come from :mod:`rl.algos_config` (shared with
:mod:`rl.algos`). ``Literal`` fields list their choices and ``Annotated[T, "<bound>"]``
states a range (checked at start-up; see :mod:`rl.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from rl.algos_config import KL_TYPES, LOSS_AGG_MODES, POLICY_LOSSES
from rl.models.config import LoraConfig

#: Learning-rate schedules (actor and SFT).
LR_SCHEDULERS = ("constant", "cosine")
#: FSDP mixed-precision dtypes ("" = the model's dtype).
FSDP_DTYPES = ("", "float32", "bfloat16", "float16")
#: How token-budget micro-batches run (``actor.packing``).
PACKING_MODES = ("auto", "padded", "packed")


@dataclass
class OptimConfig:
    """AdamW optimizer and learning-rate schedule of the actor."""

    # AdamW learning rate.
    lr: Annotated[float, "> 0"] = 1e-6
    # AdamW weight decay.
    weight_decay: Annotated[float, ">= 0"] = 0.01
    # AdamW betas.
    betas: Annotated[list[float], "len == 2", ">= 0, < 1"] = field(default_factory=lambda: [0.9, 0.999])
    # constant | cosine
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant"
    # Fraction of the steps with linear warm-up.
    warmup_ratio: Annotated[float, ">= 0, <= 1"] = 0.0
    # Gradient-norm clipping threshold (<= 0: no clipping; the norm is still logged).
    grad_clip: float = 1.0


@dataclass
class FSDPConfig:
    """FSDP2 sharding and mixed precision of the policy workers."""

    # Mixed precision parameter / reduce dtypes (FSDP2 MixedPrecisionPolicy); "" = model dtype.
    param_dtype: Literal[FSDP_DTYPES] = ""
    # Gradient reduce dtype of the mixed-precision policy.
    reduce_dtype: Literal[FSDP_DTYPES] = "float32"
    # Free gathered parameters after each block's forward (ZeRO-3 style).
    reshard_after_forward: bool = True
    # Keep parameters and optimizer state in CPU memory (CPUOffloadPolicy).
    cpu_offload: bool = False


@dataclass
class ActorConfig:
    """GRPO policy update: batching, loss (verl core_algos), KL, optimizer."""

    # Prompts per optimizer step (x rollout.n responses).
    ppo_mini_batch_size: Annotated[int, ">= 1"] = 16
    # Sequences per forward/backward on one worker (used when max_tokens_per_micro_batch is 0).
    ppo_micro_batch_size_per_worker: Annotated[int, ">= 1"] = 8
    # Token budget of one forward/backward on one worker (actor update, old and reference log-probs):
    # micro-batches of rows of similar length up to this many prompt + response tokens after
    # trimming their padding (packed: the sum of the rows' tokens); the actor update's rank shards
    # are balanced by tokens. 0 = fixed-size micro-batches of ppo_micro_batch_size_per_worker.
    # The loss is the same either way (docs/grpo.md#token-budget-micro-batches-and-packing).
    max_tokens_per_micro_batch: Annotated[int, ">= 0"] = 0
    # How a token-budget micro-batch runs: auto (packed with flash_attention_2 as
    # model.attn_implementation, padded otherwise) | padded (rows padded to the micro-batch's longest
    # prompt and response) | packed (rows concatenated without padding, position ids restarting per
    # sequence: varlen attention with flash-attention 2; sdpa / eager use a block-diagonal mask,
    # exact but not faster). Ignored when max_tokens_per_micro_batch is 0.
    packing: Literal[PACKING_MODES] = "auto"
    # Passes over each GRPO batch (1 = on-policy).
    ppo_epochs: Annotated[int, ">= 1"] = 1
    # Policy loss of verl's core_algos: vanilla, gspo, gpg, clip_cov, kl_cov, geo_mean, cispo, sapo, dppo_tv,
    # dppo_kl, bypass_mode.
    policy_loss: Literal[POLICY_LOSSES] = "vanilla"
    # PPO ratio clip below 1 (epsilon_low).
    clip_ratio_low: Annotated[float, ">= 0"] = 0.2
    # PPO ratio clip above 1 (epsilon_high).
    clip_ratio_high: Annotated[float, ">= 0"] = 0.2
    # Dual-clip constant for negative advantages.
    clip_ratio_c: Annotated[float, "> 1"] = 3.0
    # token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
    loss_agg_mode: Literal[LOSS_AGG_MODES] = "token-mean"
    # Add a KL-to-reference loss term (the reference group runs only when true and coef > 0).
    use_kl_loss: bool = True
    # KL loss coefficient beta (0.01 RCoT-Seg; 5e-3 Seg-Zero/Veason-R1).
    kl_loss_coef: Annotated[float, ">= 0"] = 0.01
    # low_var_kl | kl | k1 | abs | mse | k2 | k3 (verl kl_penalty names), or a straight-through variant
    # low_var_kl+ | kl+ | k1+ | abs+ | k3+ (value of the named estimator, gradient of k2).
    kl_loss_type: Literal[KL_TYPES] = "low_var_kl"
    # Entropy bonus coefficient (1e-3 in Seg-Zero configs).
    entropy_coeff: float = 0.0
    optim: OptimConfig = field(default_factory=OptimConfig)
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)
    # LoRA during GRPO (rank > 0): only the adapters on the language model's target modules are
    # trained (vision tower frozen); the reference is the same model with adapters disabled (no
    # reference workers); rollout engines get merged weights (vLLM on GPU: the adapter); checkpoints
    # hold adapters + optimizer state. rank 0 = full fine-tuning (docs/grpo.md#lora-during-grpo).
    lora: LoraConfig = field(default_factory=LoraConfig)
