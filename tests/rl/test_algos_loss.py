"""rl.algos against plain-torch hand computations (independent of verl)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl.algos import GlobalBatchInfo, compute_advantages, policy_loss, token_level_rewards
from rl.config import ActorConfig, AlgorithmConfig
from tests.rl.workers.hand import hand_loss

# A fixed batch: 3 responses x 4 positions, ragged masks.
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
OLD = torch.tensor([[-1.0, -2.0, -0.5, -9.0], [-1.5, -0.7, -9.0, -9.0], [-2.0, -1.0, -0.3, -1.2]])
# ratios exp(logp - old): 1.5 (A>0: clipped high), 1.0, 1.1 | 0.5 (A<0: clipped low), 4.0 (A<0: dual clip) | 0.9, 1.0, 1.3, 0.95
RATIO = torch.tensor([[1.5, 1.0, 1.1, 1.0], [0.5, 4.0, 1.0, 1.0], [0.9, 1.0, 1.3, 0.95]])
LOGP = OLD + torch.log(RATIO)
REF = LOGP + torch.tensor([[0.1, -0.2, 0.3, 0.0], [-0.4, 0.05, 0.0, 0.0], [0.2, -0.1, 0.0, 0.5]])
ADV = torch.tensor([[0.8] * 4, [-1.2] * 4, [0.3] * 4]) * MASK
ENTROPY = torch.tensor([[1.0, 2.0, 0.5, 7.0], [0.2, 0.4, 7.0, 7.0], [1.5, 0.1, 0.3, 0.9]])


def actor_cfg(**kw) -> ActorConfig:
    base = dict(kl_loss_coef=0.01, kl_loss_type="low_var_kl", entropy_coeff=1e-3, use_kl_loss=True)
    base.update(kw)
    return ActorConfig(**base)


def test_policy_loss_matches_hand_computation_and_gradient():
    logp = LOGP.clone().requires_grad_(True)
    ent = ENTROPY.clone().requires_grad_(True)
    loss, metrics = policy_loss(logp, OLD, ADV, MASK, actor_cfg(), ref_log_prob=REF, entropy=ent)
    loss.backward()

    logp_h = LOGP.clone().requires_grad_(True)
    ent_h = ENTROPY.clone().requires_grad_(True)
    total, pg, kl, entropy, clipfrac = hand_loss(logp_h, OLD, REF, ADV, MASK, ent_h)
    pg, kl, entropy = pg.detach(), kl.detach(), entropy.detach()
    total.backward()

    torch.testing.assert_close(loss.detach(), total.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logp.grad, logp_h.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ent.grad, ent_h.grad, rtol=1e-5, atol=1e-9)
    assert metrics["actor/pg_loss"] == pytest.approx(float(pg), abs=1e-6)
    assert metrics["actor/kl_loss"] == pytest.approx(float(kl), abs=1e-6)
    assert metrics["actor/entropy"] == pytest.approx(float(entropy), abs=1e-6)
    assert metrics["actor/pg_clipfrac"] == pytest.approx(float(clipfrac), abs=1e-6)
    assert float(clipfrac) == pytest.approx(3 / 9)  # ratios 1.5 and 1.3 (A>0) clipped high, 0.5 (A<0) low
    # clipped tokens carry no policy gradient: the (0,0) token's gradient is KL only
    kl_only = LOGP.clone().requires_grad_(True)
    k = REF - kl_only
    (0.01 * torch.clamp(torch.exp(k) - k - 1, -10, 10)[0, 0] / 9).backward()
    torch.testing.assert_close(logp.grad[0, 0], kl_only.grad[0, 0])
    assert float(logp.grad[0, 3]) == 0.0 and float(logp.grad[1, 2]) == 0.0  # masked positions


def test_asymmetric_clip_uses_both_bounds():
    cfg = actor_cfg(clip_ratio_low=0.4, clip_ratio_high=0.1, use_kl_loss=False, entropy_coeff=0.0)
    loss, _ = policy_loss(LOGP, OLD, ADV, MASK, cfg)
    expected = hand_loss(LOGP, OLD, REF, ADV, MASK, ENTROPY, eps_low=0.4, eps_high=0.1, kl_coef=0.0, ent_coef=0.0)[0]
    torch.testing.assert_close(loss, expected)


def test_kl_loss_requires_reference():
    with pytest.raises(ValueError, match="ref"):
        policy_loss(LOGP, OLD, ADV, MASK, actor_cfg(), entropy=ENTROPY)


def test_unknown_policy_loss_is_named():
    with pytest.raises(ValueError, match="nonexistent_loss"):
        policy_loss(LOGP, OLD, ADV, MASK, actor_cfg(policy_loss="nonexistent_loss"), ref_log_prob=REF)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
@pytest.mark.parametrize("loss_name", ["vanilla", "gspo"])
def test_global_normalisation_micro_batches_and_ranks(mode, loss_name):
    """Gradient averaged over 2 simulated ranks x uneven micro-batches == full-batch gradient."""
    gen = torch.Generator().manual_seed(3)
    num, width = 8, 5
    lengths = torch.tensor([1, 5, 3, 2, 4, 5, 1, 2])
    mask = (torch.arange(width)[None] < lengths[:, None]).long()
    old = -torch.rand(num, width, generator=gen) * 2
    logp0 = old + 0.3 * torch.randn(num, width, generator=gen)
    ref = old + 0.2 * torch.randn(num, width, generator=gen)
    adv = torch.randn(num, 1, generator=gen).expand(num, width) * mask
    ent0 = torch.rand(num, width, generator=gen)
    cfg = actor_cfg(loss_agg_mode=mode, policy_loss=loss_name, entropy_coeff=0.01, clip_ratio_low=0.1, clip_ratio_high=0.1)

    logp = logp0.clone().requires_grad_(True)
    full_loss, full_metrics = policy_loss(logp, old, adv, mask, cfg, ref_log_prob=ref, entropy=ent0)
    full_loss.backward()
    full_grad = logp.grad.clone()

    ranks = [[0, 1, 2, 3], [4, 5, 6, 7]]
    micro = {0: [[0], [1, 2], [3]], 1: [[4, 5, 6], [7]]}
    info = GlobalBatchInfo(dp_size=2, num_tokens=int(mask.sum()), num_seqs=num)
    grad_sum = torch.zeros_like(logp0)
    metric_sum: dict[str, float] = {}
    for rank in range(2):
        for rows in micro[rank]:
            lp = logp0[rows].clone().requires_grad_(True)
            loss, metrics = policy_loss(lp, old[rows], adv[rows], mask[rows], cfg, info,
                                        ref_log_prob=ref[rows], entropy=ent0[rows])
            loss.backward()
            grad_sum[rows] += lp.grad
            for key, value in metrics.items():
                metric_sum[key] = metric_sum.get(key, 0.0) + value
    assert sorted(ranks[0] + ranks[1]) == list(range(num))
    torch.testing.assert_close(grad_sum / 2, full_grad, rtol=1e-5, atol=1e-7)  # FSDP averages over ranks
    for key in ("actor/pg_loss", "actor/kl_loss", "actor/entropy"):
        assert metric_sum[key] == pytest.approx(full_metrics[key], abs=1e-6), key
    if mode == "token-mean":
        for key in ("actor/pg_clipfrac", "actor/ppo_kl"):
            assert metric_sum[key] == pytest.approx(full_metrics[key], abs=1e-6), key


# ------------------------------------------------------------------------ advantages


def test_token_level_rewards_on_last_valid_token():
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    rewards = token_level_rewards(torch.tensor([1.0, 2.0, 3.0, -4.0]), mask)
    expected = torch.zeros(4, 4)
    expected[0, 1], expected[1, 2], expected[3, 3] = 1.0, 2.0, -4.0
    torch.testing.assert_close(rewards, expected)


def hand_grpo(scores: list[float], groups: list[str]) -> list[float]:
    out = []
    for i, g in enumerate(groups):
        members = [scores[j] for j in range(len(scores)) if groups[j] == g]
        mean = sum(members) / len(members)
        std = (sum((x - mean) ** 2 for x in members) / (len(members) - 1)) ** 0.5  # unbiased
        out.append((scores[i] - mean) / (std + 1e-6))
    return out


@pytest.mark.parametrize("estimator", ["grpo", "grpo_vectorized"])
def test_grpo_advantages_per_group_formula(estimator):
    scores = [1.0, 0.0, 2.5, 0.5, 3.0, 3.0, 7.0, 1.0, 4.0]
    groups = ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    mask = torch.ones(9, 3, dtype=torch.long)
    mask[2, 1:] = 0
    mask[7, 2] = 0
    adv, _ = compute_advantages(torch.tensor(scores), mask, np.array(groups), AlgorithmConfig(adv_estimator=estimator))
    expected = torch.tensor(hand_grpo(scores, groups))[:, None] * mask
    torch.testing.assert_close(adv, expected, rtol=1e-5, atol=1e-6)


def test_grpo_identical_scores_give_zero_advantage():
    adv, _ = compute_advantages(torch.tensor([2.0, 2.0, 2.0, 2.0]), torch.ones(4, 2), np.array([0, 0, 0, 0]),
                                AlgorithmConfig())
    assert torch.count_nonzero(adv) == 0


def test_grpo_without_std_normalisation_and_rloo():
    scores, groups = [1.0, 0.0, 2.0, 5.0], np.array([0, 0, 0, 1])
    mask = torch.ones(4, 2)
    adv, _ = compute_advantages(torch.tensor(scores[:3]), mask[:3], groups[:3],
                                AlgorithmConfig(norm_adv_by_std_in_grpo=False))
    torch.testing.assert_close(adv[:, 0], torch.tensor([0.0, -1.0, 1.0]))
    adv, _ = compute_advantages(torch.tensor(scores[:3]), mask[:3], groups[:3], AlgorithmConfig(adv_estimator="rloo"))
    # leave-one-out baseline: R_i - mean of the others
    torch.testing.assert_close(adv[:, 0], torch.tensor([1.0 - 1.0, 0.0 - 1.5, 2.0 - 0.5]))


def test_estimator_errors_are_named():
    mask, groups = torch.ones(2, 2), np.array([0, 0])
    with pytest.raises(ValueError, match="values"):
        compute_advantages(torch.tensor([1.0, 0.0]), mask, groups, AlgorithmConfig(adv_estimator="gae"))
    with pytest.raises(ValueError, match="no_such_estimator"):
        compute_advantages(torch.tensor([1.0, 0.0]), mask, groups, AlgorithmConfig(adv_estimator="no_such_estimator"))
    with pytest.raises(ValueError, match="group_index"):
        compute_advantages(torch.tensor([1.0, 0.0]), mask, np.array([0]), AlgorithmConfig())
