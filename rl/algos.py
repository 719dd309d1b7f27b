"""GRPO algorithm layer: a thin typed wrapper over verl's ``core_algos``.

Everything numerical comes from ``verl.trainer.ppo.core_algos``:

* advantages: ``get_adv_estimator_fn(cfg.adv_estimator)`` (any registered estimator that
  needs only outcome rewards: grpo, grpo_vectorized, rloo, rloo_vectorized, opo, gpg,
  reinforce_plus_plus, reinforce_plus_plus_baseline, grpo_passk, gdpo, ...);
* policy loss: ``get_policy_loss_fn(actor_cfg.policy_loss)`` (vanilla, gspo, clip_cov, ...);
* KL to the reference: ``kl_penalty`` (low_var_kl / k3, kl / k1, abs, mse / k2, and the
  straight-through ``+`` variants low_var_kl+ / k3+, kl+ / k1+, abs+);
* aggregation: ``agg_loss`` with *global* normalisation;
* rollout correction: the IS weights of :mod:`rl.rollout_corr` (verl's ``rollout_corr_helper``)
  reach the policy loss as its ``rollout_is_weights``.

The names the config accepts for each of these are the lists of :mod:`rl.algos_config`.

Global normalisation (the facts of verl's FSDP engine): a micro-batch's loss is
``sum(loss_mat * mask) / N_global * dp_size`` where ``N_global`` is the number of valid
tokens of the whole mini-batch summed over every data-parallel rank. Summing the gradients
of all micro-batches of a rank and averaging over ranks (what FSDP's reduce-scatter does)
then gives exactly the gradient of the full-batch token mean, whatever the micro-batch size
and the number of ranks. The ``seq-mean-*`` modes use the global number of sequences the
same way.

Metrics returned by :func:`policy_loss` are *additive contributions*: summing them over
the micro-batches of a rank and over the ranks gives the global-batch value (token means
over the global mini-batch), named like verl (``actor/pg_loss``, ``actor/kl_loss``,
``actor/entropy``, ``actor/pg_clipfrac``, ``actor/ppo_kl``, ...).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from rl.algos_config import KL_TYPES, POLICY_LOSSES, AlgorithmConfig
from rl.workers.config import ActorConfig

__all__ = [
    "GlobalBatchInfo",
    "token_level_rewards",
    "compute_advantages",
    "make_verl_actor_config",
    "policy_loss",
    "check_actor_config",
]

# Inputs compute_advantages can give an estimator; anything else it requires is unsupported.
_OUTCOME_INPUTS = ("token_level_rewards", "response_mask", "index", "config", "norm_adv_by_std_in_grpo")


def _core_algos():
    """verl's core_algos, imported lazily (the import costs several seconds)."""
    from verl.trainer.ppo import core_algos

    return core_algos


@dataclass(frozen=True)
class GlobalBatchInfo:
    """Totals of one optimisation (mini-)batch over every data-parallel rank.

    Attributes:
        dp_size: number of data-parallel ranks whose gradients are averaged.
        num_tokens: valid response tokens of the mini-batch summed over all ranks.
        num_seqs: sequences with at least one valid response token, summed over all ranks.
    """

    dp_size: int
    num_tokens: int
    num_seqs: int

    @classmethod
    def local(cls, response_mask: torch.Tensor) -> "GlobalBatchInfo":
        """Totals of a single-rank batch that is processed in one piece.  response_mask: (B, R)."""
        mask = response_mask.bool()
        return cls(dp_size=1, num_tokens=int(mask.sum()), num_seqs=int(mask.any(-1).sum()))

    def as_verl_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``core_algos.agg_loss`` (verl's ``global_batch_info``)."""
        return {
            "dp_size": self.dp_size,
            "batch_num_tokens": max(self.num_tokens, 1),
            "global_batch_size": max(self.num_seqs, 1),
            "loss_scale_factor": None,
        }


# ---------------------------------------------------------------------------- advantages


def token_level_rewards(scores: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Place each sequence's scalar reward on its last valid response token.

    Args:
        scores: (B,) outcome reward per response.
        response_mask: (B, R) 1 on valid response tokens (need not be left-aligned).

    Returns:
        (B, R) float32 tensor, zero except ``scores[i]`` at the last valid token of row ``i``
        (a row without valid tokens gets no reward).
    """
    mask = response_mask.bool()
    if scores.dim() != 1 or mask.dim() != 2 or scores.shape[0] != mask.shape[0]:
        raise ValueError(f"scores must be (B,) and response_mask (B, R); got {tuple(scores.shape)}, {tuple(mask.shape)}")
    num_positions = mask.shape[1]
    positions = torch.arange(num_positions, device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values  # (B,)
    rewards = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    has_tokens = last >= 0
    rows = torch.nonzero(has_tokens, as_tuple=True)[0]
    rewards[rows, last[rows]] = scores.to(device=mask.device, dtype=torch.float32)[rows]
    return rewards


def _verl_algo_config(cfg: AlgorithmConfig):
    from verl.trainer.config import AlgoConfig

    return AlgoConfig(adv_estimator=cfg.adv_estimator, norm_adv_by_std_in_grpo=cfg.norm_adv_by_std_in_grpo)


def compute_advantages(
    scores: torch.Tensor,
    response_mask: torch.Tensor,
    group_index: np.ndarray,
    cfg: AlgorithmConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages of outcome-reward estimators via ``core_algos.get_adv_estimator_fn``.

    Args:
        scores: (B,) scalar reward per response (put on the last valid response token).
        response_mask: (B, R) valid response tokens.
        group_index: (B,) group id per response (responses of one prompt share an id).
        cfg: ``algorithm`` config; ``adv_estimator`` names any verl-registered estimator
            that needs only outcome rewards (e.g. grpo: ``(R_i - mean_g) / (std_g + 1e-6)``
            with the unbiased std of the group).

    Returns:
        ``(advantages, returns)``, both (B, R) float32, zero on masked positions.

    Raises:
        ValueError: unknown estimator, or one that needs more than outcome rewards
            (values, reward baselines, old log-probs, ...), or mismatched shapes.
    """
    core_algos = _core_algos()
    name = cfg.adv_estimator
    if name not in core_algos.ADV_ESTIMATOR_REGISTRY:
        raise ValueError(
            f"unknown advantage estimator algorithm.adv_estimator={name!r}; "
            f"registered in verl: {sorted(core_algos.ADV_ESTIMATOR_REGISTRY)}"
        )
    estimator = core_algos.get_adv_estimator_fn(name)
    params = inspect.signature(estimator).parameters
    missing = [
        p.name
        for p in params.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        and p.name not in _OUTCOME_INPUTS
    ]
    if missing:
        raise ValueError(
            f"advantage estimator {name!r} needs {missing}, not only outcome rewards; "
            "use an outcome-reward estimator such as grpo, rloo, opo, gpg or reinforce_plus_plus"
        )
    group_index = np.asarray(group_index)
    if group_index.shape != (scores.shape[0],):
        raise ValueError(f"group_index must have shape ({scores.shape[0]},), got {group_index.shape}")
    mask = response_mask.to(torch.float32)
    available = {
        "token_level_rewards": token_level_rewards(scores, response_mask),
        "response_mask": mask,
        "index": group_index,
        "norm_adv_by_std_in_grpo": cfg.norm_adv_by_std_in_grpo,
        "config": _verl_algo_config(cfg),
    }
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in available.items() if k in params or takes_any}
    advantages, returns = estimator(**kwargs)
    return advantages.float() * mask, returns.float()


# ---------------------------------------------------------------------------- policy loss


def make_verl_actor_config(actor_cfg: ActorConfig, batch_info: Optional[GlobalBatchInfo] = None):
    """verl ``ActorConfig`` carrying the fields the registered policy losses read.

    ``global_batch_info`` is filled from ``batch_info`` (the losses pass it to ``agg_loss``).
    """
    from verl.workers.config import ActorConfig as VerlActorConfig
    from verl.workers.config import PolicyLossConfig

    verl_cfg = VerlActorConfig(
        strategy="fsdp2",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=actor_cfg.ppo_micro_batch_size_per_worker,
        clip_ratio=actor_cfg.clip_ratio_low,
        clip_ratio_low=actor_cfg.clip_ratio_low,
        clip_ratio_high=actor_cfg.clip_ratio_high,
        clip_ratio_c=actor_cfg.clip_ratio_c,
        policy_loss=PolicyLossConfig(loss_mode=actor_cfg.policy_loss),
        loss_agg_mode=actor_cfg.loss_agg_mode,
        entropy_coeff=actor_cfg.entropy_coeff,
        use_kl_loss=actor_cfg.use_kl_loss,
        kl_loss_coef=actor_cfg.kl_loss_coef,
        kl_loss_type=actor_cfg.kl_loss_type,
        ppo_epochs=actor_cfg.ppo_epochs,
        use_torch_compile=False,
    )
    if batch_info is not None:
        verl_cfg.global_batch_info.update(batch_info.as_verl_kwargs())
    return verl_cfg


def check_actor_config(actor_cfg: ActorConfig) -> None:
    """Fail, naming the key, on a policy loss / KL type outside :mod:`rl.algos_config`'s lists (the
    config loader rejects them already; this guards configs built in code)."""
    if actor_cfg.policy_loss not in POLICY_LOSSES:
        raise ValueError(
            f"unsupported policy loss actor.policy_loss={actor_cfg.policy_loss!r}; expected one of {list(POLICY_LOSSES)}"
        )
    if actor_cfg.use_kl_loss and actor_cfg.kl_loss_type not in KL_TYPES:
        raise ValueError(
            f"unsupported actor.kl_loss_type={actor_cfg.kl_loss_type!r} for a per-token KL loss; "
            f"expected one of {list(KL_TYPES)}"
        )


def policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    actor_cfg: ActorConfig,
    batch_info: Optional[GlobalBatchInfo] = None,
    ref_log_prob: Optional[torch.Tensor] = None,
    entropy: Optional[torch.Tensor] = None,
    rollout_is_weights: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total actor loss of one micro-batch, globally normalised.

    ``loss = pg_loss + kl_loss_coef * kl_loss - entropy_coeff * entropy`` where each term is
    ``agg_loss(..., loss_agg_mode, **batch_info)`` of its per-token matrix.

    Args:
        log_prob: (B, R) current policy log-probs of the response tokens (differentiable).
        old_log_prob: (B, R) log-probs of the policy that sampled the responses.
        advantages: (B, R).
        response_mask: (B, R) valid response tokens.
        actor_cfg: actor config (policy_loss, clip ratios, loss_agg_mode, KL, entropy_coeff).
        batch_info: totals of the whole mini-batch over all ranks; None = this micro-batch is
            the whole batch on a single rank.
        ref_log_prob: (B, R) reference log-probs; required when ``actor_cfg.use_kl_loss``.
        entropy: (B, R) token entropies (differentiable for the bonus); required when
            ``actor_cfg.entropy_coeff != 0``, otherwise used only for the metric.
        rollout_is_weights: (B, R) rollout-correction IS weights (:mod:`rl.rollout_corr`), detached;
            the policy loss multiplies each token's term by its weight (None: no weighting).

    Returns:
        ``(loss, metrics)``: scalar loss to backpropagate; additive metric contributions (sum
        over micro-batches and ranks = value on the global mini-batch). Always
        ``actor/pg_loss``, ``actor/pg_clipfrac``, ``actor/ppo_kl`` plus the loss's own
        extras; ``actor/kl_loss`` with the KL loss; ``actor/entropy`` when entropies are given.
    """
    core_algos = _core_algos()
    check_actor_config(actor_cfg)
    mask = response_mask.bool()
    if batch_info is None:
        batch_info = GlobalBatchInfo.local(mask)
    agg = batch_info.as_verl_kwargs()
    verl_cfg = make_verl_actor_config(actor_cfg, batch_info)
    loss_fn = core_algos.get_policy_loss_fn(actor_cfg.policy_loss)
    pg_loss, pg_metrics = loss_fn(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=actor_cfg.loss_agg_mode,
        config=verl_cfg,
        rollout_is_weights=None if rollout_is_weights is None else rollout_is_weights.detach(),
    )
    loss = pg_loss
    dp = batch_info.dp_size
    # verl's per-micro-batch metrics are local token means: weight them by this micro-batch's
    # share of the global tokens so that summing over micro-batches and ranks gives global means.
    token_share = float(mask.sum()) / max(batch_info.num_tokens, 1)
    metrics: dict[str, float] = {"actor/pg_loss": float(pg_loss.detach()) / dp}
    for key, value in pg_metrics.items():
        value = value.detach() if isinstance(value, torch.Tensor) else value
        metrics[key] = float(value) * token_share
    metrics.setdefault("actor/pg_clipfrac", 0.0)
    metrics.setdefault("actor/ppo_kl", 0.0)

    if actor_cfg.use_kl_loss:
        if ref_log_prob is None:
            raise ValueError("actor.use_kl_loss is set but no reference log-probs (ref_log_prob) were given")
        kld = core_algos.kl_penalty(logprob=log_prob, ref_logprob=ref_log_prob, kl_penalty=actor_cfg.kl_loss_type)
        kl_loss = core_algos.agg_loss(loss_mat=kld, loss_mask=mask, loss_agg_mode=actor_cfg.loss_agg_mode, **agg)
        loss = loss + actor_cfg.kl_loss_coef * kl_loss
        metrics["actor/kl_loss"] = float(kl_loss.detach()) / dp

    if entropy is not None:
        entropy_loss = core_algos.agg_loss(
            loss_mat=entropy, loss_mask=mask, loss_agg_mode=actor_cfg.loss_agg_mode, **agg
        )
        if actor_cfg.entropy_coeff != 0:
            loss = loss - actor_cfg.entropy_coeff * entropy_loss
        metrics["actor/entropy"] = float(entropy_loss.detach()) / dp
    elif actor_cfg.entropy_coeff != 0:
        raise ValueError("actor.entropy_coeff != 0 needs token entropies (entropy=...)")
    return loss, metrics
