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


@dataclass
class AlgorithmConfig:
    """Advantage estimation and group filtering."""

    # Advantage estimator of verl's core_algos that needs only outcome rewards: grpo, grpo_vectorized, rloo,
    # rloo_vectorized, opo, gpg, reinforce_plus_plus, reinforce_plus_plus_baseline, grpo_passk, gdpo.
    adv_estimator: Literal[ADV_ESTIMATORS] = "grpo"
    # Divide GRPO advantages by the group's std (false: Dr.GRPO style).
    norm_adv_by_std_in_grpo: bool = True
    # Dynamic sampling (DAPO): drop zero-variance / out-of-bounds groups and generate more prompts.
    filter_groups: FilterGroupsConfig = field(default_factory=FilterGroupsConfig)
