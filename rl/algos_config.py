"""Names the algorithm layer dispatches to, and the ``algorithm`` config section.

The name tuples are the single list shared by the config (``Literal`` choices of
``actor.kl_loss_type``, ``actor.policy_loss``, ``actor.loss_agg_mode`` and
``algorithm.adv_estimator``) and :mod:`rl.algos`, which hands them to verl's
``core_algos``. They are the subset of verl's registries that :mod:`rl.algos` can run
(``tests/rl/test_algos_names.py`` walks verl's registries against them):

* policy losses: every registered loss except ``dro`` (it needs ``policy_loss.dro_beta``,
  which this config does not carry);
* advantage estimators: the registered ones that need only outcome rewards (``gae``,
  ``remax`` and the optimal-token baselines need values, reward baselines or old
  log-probs);
* KL types: ``kl_penalty``'s estimators and its straight-through ``+`` variants (forward
  value of the named estimator, gradient of ``k2``); ``full`` (whole-vocabulary KL) is not
  implemented by verl.

This module imports nothing heavy (no torch, no verl).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Iterator, Literal, Optional

#: Per-token KL estimators of ``core_algos.kl_penalty`` (kl = k1, mse = k2, low_var_kl = k3).
KL_ESTIMATORS = ("low_var_kl", "kl", "k1", "abs", "mse", "k2", "k3")
#: Every ``actor.kl_loss_type``: the estimators and their straight-through ``+`` variants.
KL_TYPES = KL_ESTIMATORS + ("low_var_kl+", "kl+", "k1+", "abs+", "k3+")
#: ``actor.policy_loss`` values: verl's ``POLICY_LOSS_REGISTRY`` minus ``dro``.
POLICY_LOSSES = ("vanilla", "gspo", "gpg", "clip_cov", "kl_cov", "geo_mean", "cispo", "sapo", "dppo_tv", "dppo_kl",
                 "bypass_mode")
#: ``algorithm.adv_estimator`` values: verl's outcome-reward advantage estimators.
ADV_ESTIMATORS = ("grpo", "grpo_vectorized", "rloo", "rloo_vectorized", "opo", "gpg", "reinforce_plus_plus",
                  "reinforce_plus_plus_baseline", "grpo_passk", "gdpo")
#: ``actor.loss_agg_mode`` values (``core_algos.agg_loss``).
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
#: ``algorithm.rollout_correction.rollout_rs`` options: verl's ``rollout_corr_helper`` rejection criteria
#: (token / sequence sum / mean / max of the k1, k2, k3 divergences of the rollout-to-actor log-ratio).
ROLLOUT_RS_OPTIONS = ("token_k1", "token_k2", "token_k3", "seq_sum_k1", "seq_sum_k2", "seq_sum_k3",
                      "seq_mean_k1", "seq_mean_k2", "seq_mean_k3", "seq_max_k2", "seq_max_k3")


@dataclass
class FilterGroupsConfig:
    """Dynamic sampling (DAPO): drop GRPO groups without learning signal and generate more.

    A group is dropped when its n values of ``metric`` are all equal (zero variance, so every
    advantage is 0) or when the group's mean ``metric`` lies outside ``[low, high]``. The step
    keeps drawing prompt batches and generating until ``trainer.train_batch_size`` groups are
    kept (the surplus of the last round is cut) or ``max_num_gen_batches`` rounds were used;
    then it trains on the kept groups (a warning when fewer), or skips the update when none.
    """

    # Turn dynamic sampling on (off: every generated group is trained on, as plain GRPO).
    enable: bool = False
    # Value compared within a group: "score" (the total reward) or a reward component name (e.g. accuracy).
    metric: str = "score"
    # Drop groups whose mean metric is below this (null = no lower bound).
    low: Optional[float] = None
    # Drop groups whose mean metric is above this (null = no upper bound).
    high: Optional[float] = None
    # Generation rounds (prompt batches) per step at most (0 = unlimited).
    max_num_gen_batches: Annotated[int, ">= 0"] = 4

    def validate(self) -> Iterator[tuple[str, str]]:
        """Bounds in order (the metric is checked against the reward by ``rl.config``)."""
        if self.low is not None and self.high is not None and self.low > self.high:
            yield "low", f"must be <= high ({self.high}), got {self.low}"


def _threshold_problem(spec: str, pair: str) -> Optional[str]:
    """Why ``spec`` is not a positive number or, where ``pair`` allows it, ``"lower_upper"`` (None: fine)."""
    parts = str(spec).strip().split("_") if pair else [str(spec).strip()]
    try:
        values = [float(p) for p in parts] if pair or "_" not in str(spec) else []
    except ValueError:
        values = []
    if len(values) not in (1, 2) or any(not v > 0 for v in values) or (len(values) == 2 and values[0] > values[1]):
        return f"must be a positive number{pair}, got {spec!r}"
    return None


@dataclass
class RolloutCorrectionConfig:
    """Rollout correction (verl's ``algorithm.rollout_correction``): the rollout engine's log-probs of the
    sampled tokens against the actor's (``docs/grpo.md``, "Rollout correction").

    Decoupled mode (``bypass_mode=false``): the actor still computes the old log-probs; ``rollout_is``
    weights each token's policy loss by the truncated (TIS) or masked (IcePop) importance ratio
    ``pi_old / pi_rollout`` and ``rollout_rs`` drops tokens or sequences whose divergence exceeds a bound,
    both from verl's ``rollout_corr_helper``. Bypass mode: the rollout's log-probs are the old log-probs
    and the old-log-prob pass is skipped (exact only when both engines compute the same log-probs).
    """

    # IS weight level: null (no weights), token (one ratio per token) or sequence (product over the response).
    rollout_is: Optional[Literal["token", "sequence"]] = None
    # IS upper bound U: weights are truncated at U (TIS), or zeroed above it with rollout_is_threshold_lower.
    rollout_is_threshold: Annotated[float, "> 0"] = 2.0
    # IS lower bound L (null = TIS): weights outside [L, U] become 0 (masked IS, verl's IcePop "L_U" threshold).
    rollout_is_threshold_lower: Optional[Annotated[float, "> 0"]] = None
    # Divide the IS weights by their mean over the batch (tokens, or sequences for rollout_is=sequence).
    rollout_is_batch_normalize: bool = False
    # Rejection sampling (masked): comma-separated verl criteria, e.g. token_k1, seq_sum_k1, seq_mean_k3,
    # seq_max_k2 (null = off); rejected tokens leave the loss (and its token count).
    rollout_rs: Optional[str] = None
    # RS bounds, comma-separated, one per criterion or one for all: "L_U" ratio bounds for *_k1 (a single U means
    # [1/U, U]), an upper bound for k2 / k3 (null only without rollout_rs). Quote "L_U" on the command line
    # ('algorithm.rollout_correction.rollout_rs_threshold="0.5_2"'): unquoted, 0.5_2 would be read as 0.52.
    rollout_rs_threshold: Optional[str] = None
    # Use the rollout's log-probs as the old log-probs and skip the actor's old-log-prob pass (PPO ratio
    # pi_theta / pi_rollout; exact only when rollout and actor log-probs agree).
    bypass_mode: bool = False
    # Log the mismatch metrics (training/rollout_probs_diff_*, rollout_corr/*) without IS or RS too (always
    # logged with rollout_is / rollout_rs; not available in bypass mode, which has no old log-probs).
    log_metrics: bool = False

    @property
    def corrects(self) -> bool:
        """Whether the update changes: IS weights or rejection in decoupled mode."""
        return self.rollout_is is not None or self.rollout_rs is not None

    @property
    def needs_metrics(self) -> bool:
        """Whether the driver compares the rollout's log-probs with the old ones."""
        return not self.bypass_mode and (self.corrects or self.log_metrics)

    def validate(self) -> Iterator[tuple[str, str]]:
        lower = self.rollout_is_threshold_lower
        if lower is not None and lower > self.rollout_is_threshold:
            yield "rollout_is_threshold_lower", f"must be <= rollout_is_threshold ({self.rollout_is_threshold}), " \
                                                f"got {lower}"
        if self.bypass_mode and (self.corrects or self.log_metrics):
            yield "bypass_mode", ("cannot be combined with rollout_is / rollout_rs / log_metrics: bypass mode has "
                                  "no old log-probs to compare with the rollout's (its PPO ratio already is "
                                  "pi_theta / pi_rollout)")
        if self.rollout_rs is None:
            return
        options = [o.strip() for o in self.rollout_rs.split(",") if o.strip()]
        unknown = [o for o in options if o not in ROLLOUT_RS_OPTIONS]
        if not options or unknown:
            yield "rollout_rs", f"options must be among {list(ROLLOUT_RS_OPTIONS)}, got {self.rollout_rs!r}"
            return
        if self.rollout_rs_threshold is None:
            yield "rollout_rs_threshold", "must be set when rollout_rs is"
            return
        specs = [t.strip() for t in str(self.rollout_rs_threshold).split(",") if t.strip()]
        if len(specs) not in (1, len(options)):
            yield "rollout_rs_threshold", (f"needs 1 or {len(options)} values (one per rollout_rs option), "
                                           f"got {len(specs)}")
            return
        for option, spec in zip(options, specs * len(options) if len(specs) == 1 else specs):
            problem = _threshold_problem(spec, ' or "lower_upper"' if option.endswith("k1") else "")
            if problem:
                yield "rollout_rs_threshold", f"for {option} {problem}"


@dataclass
class AlgorithmConfig:
    """Advantage estimation, group filtering and rollout correction."""

    # Advantage estimator of verl's core_algos that needs only outcome rewards: grpo, grpo_vectorized, rloo,
    # rloo_vectorized, opo, gpg, reinforce_plus_plus, reinforce_plus_plus_baseline, grpo_passk, gdpo.
    adv_estimator: Literal[ADV_ESTIMATORS] = "grpo"
    # Divide GRPO advantages by the group's std (false: Dr.GRPO style).
    norm_adv_by_std_in_grpo: bool = True
    # Dynamic sampling (DAPO): drop zero-variance / out-of-bounds groups and generate more prompts.
    filter_groups: FilterGroupsConfig = field(default_factory=FilterGroupsConfig)
    # Rollout correction: IS weights / rejection from rollout vs actor log-probs, or bypass of the old log-probs.
    rollout_correction: RolloutCorrectionConfig = field(default_factory=RolloutCorrectionConfig)
