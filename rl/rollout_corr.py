"""Rollout correction: the rollout engine's log-probs of the sampled tokens against the actor's.

The rollout engine (vLLM in bf16, or transformers' ``generate`` with a KV cache) and the FSDP
actor compute the same quantity, ``log_softmax(logits / T)`` of each sampled token (the
convention of :mod:`rl.rollout.base`), but not always the same numbers. This module turns
the two into what ``algorithm.rollout_correction`` (:class:`rl.algos_config.RolloutCorrectionConfig`)
asks for, with verl's ``rollout_corr_helper`` doing every computation:

* **IS weights** (``rollout_is``): ``w = pi_old / pi_rollout`` per token, or per sequence as the
  product over the response (``exp`` of the summed log-ratio, clamped at ``exp(+-20)``); truncated
  at ``rollout_is_threshold`` (TIS) or zeroed outside ``[rollout_is_threshold_lower,
  rollout_is_threshold]`` (masked IS); optionally divided by their batch mean. The actor
  multiplies each token's policy loss by its weight (``rollout_is_weights`` of verl's losses).
* **Rejection** (``rollout_rs``): tokens or whole sequences whose divergence (k1 / k2 / k3 of the
  log-ratio, per token or as the sequence's sum / mean / max) is out of bounds leave the loss
  (the actor's ``loss_mask``): policy, KL and entropy terms and the token count.
* **Mismatch metrics**: ``training/rollout_probs_diff_{valid,max,mean,std}`` and
  ``training/rollout_actor_probs_pearson_corr`` (token probabilities, verl's debug metrics) and
  ``rollout_corr/*`` (KL, k3 KL, perplexities, chi-square, IS and RS statistics).
* **Bypass** (``bypass_mode``): :func:`rollout_log_probs` stands in for the old log-probs.

Advantages are computed from the scores of every sampled response whatever the rejection (a
rejected token only leaves the policy loss); the data metrics keep the original mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import torch

from rl.algos_config import RolloutCorrectionConfig

if TYPE_CHECKING:
    from rl.batch import GRPOBatch, RolloutBatch

__all__ = ["RolloutCorrection", "rollout_log_probs", "mismatch_metrics", "compute_rollout_correction",
           "apply_rollout_correction", "update_kwargs"]


@dataclass
class RolloutCorrection:
    """The correction of one batch (``N`` responses, ``R`` response columns).

    Attributes:
        is_weights: (N, R) float32 IS weights, 0 on padding (None without ``rollout_is``).
        response_mask: (N, R) the response mask after rejection (the input mask without ``rollout_rs``).
        metrics: ``training/rollout_probs_diff_*`` and ``rollout_corr/*`` of the batch.
        rejects: whether ``response_mask`` comes from rejection sampling.
    """

    is_weights: Optional[torch.Tensor]
    response_mask: torch.Tensor
    metrics: dict[str, float]
    rejects: bool = False


def rollout_log_probs(rollout: "RolloutBatch", response_mask: torch.Tensor) -> torch.Tensor:
    """The rollout engine's log-probs as an (N, R) float32 tensor aligned with ``response_mask``.

    Row ``i`` holds the first ``L_i = response_mask[i].sum()`` entries of ``rollout.rollout_log_probs[i]``
    (responses are right-padded and may have been cut after their first stop token) and 0 on padding,
    the layout of the actor's old log-probs.

    Raises:
        ValueError: a response has fewer log-probs than valid tokens (e.g. generated without
            ``logprobs``), or a log-prob is not finite.
    """
    mask = response_mask.bool()
    if len(rollout.rollout_log_probs) != mask.shape[0]:
        raise ValueError(f"{len(rollout.rollout_log_probs)} rollout log-prob rows for {mask.shape[0]} responses")
    out = torch.zeros(mask.shape, dtype=torch.float32)
    for i, (values, length) in enumerate(zip(rollout.rollout_log_probs, mask.sum(-1).tolist())):
        if len(values) < length:
            raise ValueError(f"response {i} has {length} tokens but {len(values)} rollout log-probs; the rollout "
                             "must return the sampled tokens' log-probs (SamplingParams.logprobs)")
        out[i, :length] = torch.tensor(values[:length], dtype=torch.float32)
    if not torch.isfinite(out[mask]).all():
        raise ValueError("the rollout returned non-finite log-probs")
    return out * mask


def mismatch_metrics(old_log_probs: torch.Tensor, rollout_log_probs_: torch.Tensor,
                     response_mask: torch.Tensor) -> dict[str, float]:
    """verl's ``training/rollout_probs_diff_*`` metrics: ``|p_actor - p_rollout|`` of the token
    probabilities (max / mean / std over valid tokens) and their Pearson correlation. All inputs (N, R);
    ``training/rollout_probs_diff_valid`` is 0 (and the rest NaN) without a valid token."""
    from verl.utils.debug.metrics import calculate_log_prob_diff, pearson_correlation_coefficient

    mask = response_mask.bool()
    if not mask.any():
        return {"training/rollout_probs_diff_valid": 0.0, **{f"training/rollout_probs_diff_{k}": float("nan")
                                                           for k in ("max", "mean", "std")},
                "training/rollout_actor_probs_pearson_corr": float("nan")}
    actor_probs, rollout_probs = torch.exp(old_log_probs.float()), torch.exp(rollout_log_probs_.float())
    diff = calculate_log_prob_diff(actor_probs, rollout_probs, mask)
    return {
        "training/rollout_probs_diff_valid": 1.0,
        "training/rollout_probs_diff_max": float(diff.max()),
        "training/rollout_probs_diff_mean": float(diff.mean()),
        "training/rollout_probs_diff_std": float(diff.std()) if diff.numel() > 1 else 0.0,
        "training/rollout_actor_probs_pearson_corr": float(pearson_correlation_coefficient(actor_probs, rollout_probs,
                                                                                           mask)),
    }


def compute_rollout_correction(old_log_probs: torch.Tensor, rollout_log_probs_: torch.Tensor,
                               response_mask: torch.Tensor, cfg: RolloutCorrectionConfig) -> RolloutCorrection:
    """IS weights, rejection mask and metrics of one batch (verl's
    ``compute_rollout_correction_and_rejection_mask`` on the log-ratio ``old - rollout``).

    Args:
        old_log_probs: (N, R) the actor's log-probs before the update (``pi_old``).
        rollout_log_probs_: (N, R) the rollout engine's (:func:`rollout_log_probs`).
        response_mask: (N, R) valid response tokens.
        cfg: ``algorithm.rollout_correction``.
    """
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_rejection_mask

    old, rollout = old_log_probs.float(), rollout_log_probs_.float()
    metrics = mismatch_metrics(old, rollout, response_mask)
    if not response_mask.bool().any():      # nothing to weigh (verl refuses an empty mask)
        return RolloutCorrection(None, response_mask, metrics)
    threshold: Any = cfg.rollout_is_threshold
    if cfg.rollout_is_threshold_lower is not None:          # verl's "lower_upper" spelling: masked IS (IcePop)
        threshold = f"{cfg.rollout_is_threshold_lower}_{cfg.rollout_is_threshold}"
    weights, mask, corr_metrics = compute_rollout_correction_and_rejection_mask(
        old_log_prob=old, rollout_log_prob=rollout, response_mask=response_mask,
        rollout_is=cfg.rollout_is, rollout_is_threshold=threshold,
        rollout_is_batch_normalize=cfg.rollout_is_batch_normalize,
        rollout_rs=cfg.rollout_rs, rollout_rs_threshold=cfg.rollout_rs_threshold,
    )
    metrics.update({k: float(v) for k, v in corr_metrics.items()})
    is_weights = weights.batch["rollout_is_weights"].float() if weights is not None else None
    return RolloutCorrection(is_weights, mask, metrics, rejects=cfg.rollout_rs is not None)


def apply_rollout_correction(batch: "GRPOBatch", cfg: RolloutCorrectionConfig) -> None:
    """Set ``batch.rollout_correction`` from its old and rollout log-probs when ``cfg`` asks for IS
    weights, rejection or metrics (decoupled mode); otherwise leave the batch untouched."""
    if not cfg.needs_metrics:
        return
    mask = batch.encoded.response_mask
    batch.rollout_correction = compute_rollout_correction(
        batch.old_log_probs, rollout_log_probs(batch.rollout, mask), mask, cfg)


def update_kwargs(batch: "GRPOBatch") -> dict[str, torch.Tensor]:
    """The rollout correction's keyword arguments of the actor's ``update_policy``: ``rollout_is_weights``
    (N, R) with IS weights, ``loss_mask`` (N, R) (the response mask after rejection) with rejection
    sampling; none without a correction, so the uncorrected call is unchanged."""
    corr = batch.rollout_correction
    if corr is None:
        return {}
    kwargs = {"rollout_is_weights": corr.is_weights} if corr.is_weights is not None else {}
    if corr.rejects:
        kwargs["loss_mask"] = corr.response_mask
    return kwargs
