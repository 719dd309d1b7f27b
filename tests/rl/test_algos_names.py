"""The name lists of rl.algos_config against what rl.algos (verl's core_algos) can actually run.

Config and algorithm layer share one list each; these tests walk verl's registries so that a
name the config accepts always runs, and a registered name it rejects really cannot run here.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest
import torch

from rl.algos import check_actor_config, compute_advantages, make_verl_actor_config, policy_loss
from rl.algos_config import ADV_ESTIMATORS, KL_ESTIMATORS, KL_TYPES, POLICY_LOSSES, AlgorithmConfig
from rl.config import ConfigError, load_config
from rl.workers.config import ActorConfig

MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
OLD = torch.tensor([[-1.0, -2.0, -0.5, -9.0], [-1.5, -0.7, -9.0, -9.0], [-2.0, -1.0, -0.3, -1.2]])
LOGP = OLD + torch.tensor([[0.1, -0.2, 0.05, 0.0], [0.3, 0.0, 0.0, 0.0], [-0.1, 0.2, 0.0, 0.1]])
REF = LOGP + torch.tensor([[0.1, -0.2, 0.3, 0.0], [-0.4, 0.05, 0.0, 0.0], [0.2, -0.1, 0.0, 0.5]])
ADV = torch.tensor([[0.8] * 4, [-1.2] * 4, [0.3] * 4]) * MASK
N_TOKENS = int(MASK.sum())


def _core_algos():
    from verl.trainer.ppo import core_algos

    return core_algos


def _field_choices(cls: type, name: str) -> tuple:
    return typing.get_args(typing.get_type_hints(cls)[name])


def test_config_choices_are_the_shared_lists():
    from rl.algos_config import LOSS_AGG_MODES

    assert _field_choices(ActorConfig, "kl_loss_type") == KL_TYPES
    assert _field_choices(ActorConfig, "policy_loss") == POLICY_LOSSES
    assert _field_choices(ActorConfig, "loss_agg_mode") == LOSS_AGG_MODES
    assert _field_choices(AlgorithmConfig, "adv_estimator") == ADV_ESTIMATORS
    for key, names in (("actor.kl_loss_type", KL_TYPES), ("actor.policy_loss", POLICY_LOSSES),
                       ("algorithm.adv_estimator", ADV_ESTIMATORS)):
        section, field = key.split(".")
        for name in names:                                          # every listed name loads as given
            assert getattr(getattr(load_config([f"{key}={name}"]), section), field) == name
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config([f"{key}=bogus"])


# Hand formulas of the per-token KL estimators (d = logp - ref) and their derivatives in logp.
_KL_VALUE = {
    "kl": lambda d: d, "k1": lambda d: d, "abs": lambda d: d.abs(), "mse": lambda d: 0.5 * d * d,
    "k2": lambda d: 0.5 * d * d, "low_var_kl": lambda d: torch.exp(-d) + d - 1, "k3": lambda d: torch.exp(-d) + d - 1,
}
_KL_GRAD = {
    "kl": lambda d: torch.ones_like(d), "k1": lambda d: torch.ones_like(d), "abs": torch.sign,
    "mse": lambda d: d, "k2": lambda d: d, "low_var_kl": lambda d: 1 - torch.exp(-d), "k3": lambda d: 1 - torch.exp(-d),
}


@pytest.mark.parametrize("kl_type", KL_TYPES)
def test_every_kl_type_the_config_accepts_runs_with_its_hand_value_and_gradient(kl_type):
    """Value: the named estimator's token mean. Gradient of the KL term: that estimator's, or k2's for ``+``."""
    base = kl_type.rstrip("+")
    assert base in KL_ESTIMATORS
    common = dict(use_kl_loss=True, entropy_coeff=0.0, clip_ratio_low=10.0, clip_ratio_high=10.0)
    with_kl = ActorConfig(kl_loss_type=kl_type, kl_loss_coef=1.0, **common)
    without_kl = ActorConfig(kl_loss_type=kl_type, kl_loss_coef=0.0, **common)
    logp = LOGP.clone().requires_grad_(True)
    loss, metrics = policy_loss(logp, OLD, ADV, MASK, with_kl, ref_log_prob=REF)
    loss.backward()
    logp0 = LOGP.clone().requires_grad_(True)
    policy_loss(logp0, OLD, ADV, MASK, without_kl, ref_log_prob=REF)[0].backward()

    d = (LOGP - REF)[MASK.bool()]
    assert metrics["actor/kl_loss"] == pytest.approx(float(_KL_VALUE[base](d).mean()), rel=1e-5, abs=1e-7)
    grad_fn = _KL_GRAD["k2"] if kl_type.endswith("+") else _KL_GRAD[base]
    expected = torch.zeros_like(LOGP)
    expected[MASK.bool()] = grad_fn(d) / N_TOKENS
    torch.testing.assert_close(logp.grad - logp0.grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kl_type", ["full", "mse+", "k2+", "low_var"])
def test_kl_types_outside_the_list_are_rejected_by_config_and_algos(kl_type):
    with pytest.raises(ConfigError, match=r"^actor\.kl_loss_type must be one of"):
        load_config([f"actor.kl_loss_type={kl_type}"])
    with pytest.raises(ValueError, match="actor.kl_loss_type"):
        check_actor_config(ActorConfig(kl_loss_type=kl_type))


def test_policy_losses_are_verls_registry_minus_those_this_config_cannot_drive():
    core_algos = _core_algos()
    registry = set(core_algos.POLICY_LOSS_REGISTRY)
    assert set(POLICY_LOSSES) <= registry
    for name in POLICY_LOSSES:
        loss, metrics = policy_loss(LOGP, OLD, ADV, MASK, ActorConfig(policy_loss=name), ref_log_prob=REF)
        assert torch.isfinite(loss) and np.isfinite(metrics["actor/pg_loss"]), name
    for name in sorted(registry - set(POLICY_LOSSES)):       # e.g. dro: needs policy_loss.dro_beta
        cfg = dataclasses.replace(ActorConfig(), policy_loss=name)
        with pytest.raises(ValueError):
            check_actor_config(cfg)
        with pytest.raises(Exception):
            core_algos.get_policy_loss_fn(name)(old_log_prob=OLD, log_prob=LOGP, advantages=ADV, response_mask=MASK.bool(),
                                                loss_agg_mode="token-mean", config=make_verl_actor_config(cfg),
                                                rollout_is_weights=None)


def test_advantage_estimators_are_verls_outcome_reward_estimators():
    core_algos = _core_algos()
    registry = set(core_algos.ADV_ESTIMATOR_REGISTRY)
    assert set(ADV_ESTIMATORS) <= registry
    scores = torch.tensor([1.0, 0.0, 2.0, 0.5])
    mask = torch.ones(4, 3)
    groups = np.array([0, 0, 1, 1])
    for name in ADV_ESTIMATORS:
        adv, _ = compute_advantages(scores, mask, groups, AlgorithmConfig(adv_estimator=name))
        assert adv.shape == (4, 3) and torch.isfinite(adv).all(), name
    for name in sorted(registry - set(ADV_ESTIMATORS)):      # gae, remax, ...: need values / baselines / log-probs
        with pytest.raises(ValueError, match="not only outcome rewards"):
            compute_advantages(scores, mask, groups, AlgorithmConfig(adv_estimator=name))
