"""Rollout correction (``algorithm.rollout_correction``): IS weights and rejection masks against
hand-computed values, the mismatch metrics on known inputs, the config rules, the weighted loss
against a plain-torch formula (policy_loss and a one-rank FSDP worker), the driver's decoupled and
bypass paths on fake worker groups, and bypass against the real rollout engine's log-probs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rl.algos import policy_loss
from rl.algos_config import ROLLOUT_RS_OPTIONS, RolloutCorrectionConfig
from rl.batch import RolloutBatch
from rl.config import ActorConfig, ConfigError, load_config
from rl.rollout_corr import compute_rollout_correction, mismatch_metrics, rollout_log_probs
from tests.rl.models.conftest import images, processor, samples, tiny_dir  # noqa: F401 (fixtures)

MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
OLD = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-1.5, -0.7, 0.0, 0.0], [-2.0, -1.0, -0.3, -1.2]])
# log(pi_old / pi_rollout) per token (0 on padding)
DELTA = [[0.1, 1.0, -0.3, 0.0], [0.5, 0.6, 0.0, 0.0], [-1.5, 0.0, 0.2, -0.1]]
ROLLOUT = (OLD - torch.tensor(DELTA)) * MASK
VALID = [[d for d, m in zip(row, mrow) if m] for row, mrow in zip(DELTA, MASK.tolist())]


def _cfg(**kw) -> RolloutCorrectionConfig:
    return RolloutCorrectionConfig(**kw)


def _per_token(fn) -> torch.Tensor:
    """(3, 4) tensor of fn(row, col, delta) on valid tokens, 0 on padding."""
    return torch.tensor([[fn(i, j, d) if m else 0.0 for j, (d, m) in enumerate(zip(row, mrow))]
                         for i, (row, mrow) in enumerate(zip(DELTA, MASK.tolist()))])


# ---------------------------------------------------------------------------- weights and masks


def test_token_tis_truncates_each_ratio_at_the_threshold():
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, _cfg(rollout_is="token", rollout_is_threshold=2.0))
    expected = _per_token(lambda i, j, d: min(math.exp(d), 2.0))      # e^1 = 2.72 -> 2
    torch.testing.assert_close(corr.is_weights, expected)
    assert torch.equal(corr.response_mask, MASK) and not corr.rejects
    assert corr.metrics["rollout_corr/rollout_is_ratio_fraction_high"] == pytest.approx(1 / 9)


def test_sequence_tis_is_the_truncated_product_of_the_ratios():
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, _cfg(rollout_is="sequence", rollout_is_threshold=2.0))
    per_seq = [min(math.exp(sum(v)), 2.0) for v in VALID]               # e^0.8, e^1.1 -> 2; e^-1.4 = 0.247
    assert per_seq[2] == pytest.approx(0.2466, abs=1e-4)
    torch.testing.assert_close(corr.is_weights, _per_token(lambda i, j, d: per_seq[i]))


def test_masked_is_zeroes_token_weights_outside_the_bounds():
    cfg = _cfg(rollout_is="token", rollout_is_threshold=2.0, rollout_is_threshold_lower=0.5)
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, cfg)
    expected = _per_token(lambda i, j, d: math.exp(d) if 0.5 <= math.exp(d) <= 2.0 else 0.0)
    torch.testing.assert_close(corr.is_weights, expected)
    assert int((expected[MASK.bool()] == 0).sum()) == 2                 # e^1.0 above, e^-1.5 below
    assert torch.equal(corr.response_mask, MASK)                         # masked IS keeps the mask


def test_sequence_rejection_drops_whole_sequences_out_of_the_ratio_bounds():
    # seq_sum_k1: sum of log(pi_rollout / pi_old) in [log 0.3, log 3]: -0.8 and -1.1 in, 1.4 out.
    cfg = _cfg(rollout_rs="seq_sum_k1", rollout_rs_threshold="0.3_3")
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, cfg)
    assert corr.is_weights is None and corr.rejects
    assert corr.response_mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert corr.metrics["rollout_corr/rollout_rs_seq_masked_fraction"] == pytest.approx(1 / 3)


def test_token_rejection_with_k3_drops_single_tokens():
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, _cfg(rollout_rs="token_k3", rollout_rs_threshold="0.1"))
    expected = _per_token(lambda i, j, d: float(math.exp(d) - 1 - d <= 0.1)).long()
    assert torch.equal(corr.response_mask, expected)
    assert corr.response_mask.sum() == 5                                 # 1.0, 0.5, 0.6, -1.5 rejected
    assert corr.metrics["rollout_corr/rollout_rs_masked_fraction"] == pytest.approx(4 / 9)


def test_batch_normalised_weights_average_one_over_tokens():
    cfg = _cfg(rollout_is="token", rollout_is_threshold=5.0, rollout_is_batch_normalize=True)
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, cfg)
    raw = _per_token(lambda i, j, d: math.exp(d))
    torch.testing.assert_close(corr.is_weights, raw / raw[MASK.bool()].mean())
    assert float(corr.is_weights[MASK.bool()].mean()) == pytest.approx(1.0)


def test_equal_log_probs_give_unit_weights_and_zero_mismatch():
    corr = compute_rollout_correction(OLD, OLD, MASK, _cfg(rollout_is="sequence", rollout_rs="token_k1",
                                                           rollout_rs_threshold="0.9_1.1"))
    torch.testing.assert_close(corr.is_weights, MASK.float())
    assert torch.equal(corr.response_mask, MASK)
    m = corr.metrics
    assert m["training/rollout_probs_diff_max"] == 0 and m["rollout_corr/kl"] == 0 and m["rollout_corr/k3_kl"] == 0
    assert m["training/rollout_actor_probs_pearson_corr"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- metrics


def test_mismatch_metrics_match_hand_formulas():
    corr = compute_rollout_correction(OLD, ROLLOUT, MASK, _cfg(log_metrics=True))
    m = corr.metrics
    valid = MASK.bool()
    p_old, p_roll = OLD.exp()[valid].numpy(), ROLLOUT.exp()[valid].numpy()
    diff = np.abs(p_old - p_roll)
    assert m["training/rollout_probs_diff_valid"] == 1.0
    assert m["training/rollout_probs_diff_max"] == pytest.approx(diff.max(), rel=1e-5)
    assert m["training/rollout_probs_diff_mean"] == pytest.approx(diff.mean(), rel=1e-5)
    assert m["training/rollout_probs_diff_std"] == pytest.approx(diff.std(ddof=1), rel=1e-4)
    assert m["training/rollout_actor_probs_pearson_corr"] == pytest.approx(np.corrcoef(p_old, p_roll)[0, 1], rel=1e-4)
    deltas = [d for row in VALID for d in row]
    assert m["rollout_corr/kl"] == pytest.approx(-np.mean(deltas), rel=1e-5)           # E[log rollout - log old]
    assert m["rollout_corr/k3_kl"] == pytest.approx(np.mean([math.exp(d) - d - 1 for d in deltas]), rel=1e-5)
    assert m["rollout_corr/chi2_token"] == pytest.approx(np.mean([math.exp(2 * d) for d in deltas]) - 1, rel=1e-5)
    assert m["rollout_corr/chi2_seq"] == pytest.approx(np.mean([math.exp(2 * sum(v)) for v in VALID]) - 1, rel=1e-5)
    old_rows = [[o for o, k in zip(r, mr) if k] for r, mr in zip(OLD.tolist(), MASK.tolist())]
    ppl = np.mean([math.exp(-np.mean(r)) for r in old_rows])
    assert m["rollout_corr/training_ppl"] == pytest.approx(ppl, rel=1e-5)
    assert corr.is_weights is None and not any(k.startswith("rollout_corr/rollout_is") for k in m)


def test_mismatch_metrics_without_valid_tokens_are_flagged_invalid():
    m = mismatch_metrics(OLD, ROLLOUT, torch.zeros_like(MASK))
    assert m["training/rollout_probs_diff_valid"] == 0.0 and math.isnan(m["training/rollout_probs_diff_mean"])


# ---------------------------------------------------------------------------- rollout log-prob alignment


def _rollout(logps: list[list[float]]) -> RolloutBatch:
    n = len(logps)
    return RolloutBatch([{}], n, [0] * n, [[1] * len(x) for x in logps], [""] * n, logps, ["stop"] * n)


def test_rollout_log_probs_align_with_the_response_mask():
    # Row 0 was cut after its first stop token by the encoder: only its first 2 log-probs count.
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = rollout_log_probs(_rollout([[-0.1, -0.2, -0.3, -0.4], [-1.0, -2.0, -3.0]]), mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[-0.1, -0.2, 0.0], [-1.0, -2.0, -3.0]]))
    with pytest.raises(ValueError, match="response 1 has 3 tokens but 2 rollout log-probs"):
        rollout_log_probs(_rollout([[-0.1, -0.2], [-1.0, -2.0]]), mask)
    with pytest.raises(ValueError, match="non-finite"):
        rollout_log_probs(_rollout([[-0.1, -0.2], [-1.0, float("nan"), -3.0]]), mask)


# ---------------------------------------------------------------------------- config


def test_defaults_are_off_and_rs_options_are_verls():
    from verl.trainer.ppo.rollout_corr_helper import SUPPORTED_ROLLOUT_RS_OPTIONS

    cfg = load_config([]).algorithm.rollout_correction
    assert cfg == RolloutCorrectionConfig() and not cfg.corrects and not cfg.needs_metrics and not cfg.bypass_mode
    assert set(ROLLOUT_RS_OPTIONS) == SUPPORTED_ROLLOUT_RS_OPTIONS


@pytest.mark.parametrize("overrides, message", [
    (["bypass_mode=true", "rollout_is=token"], "bypass_mode cannot be combined"),
    (["bypass_mode=true", "log_metrics=true"], "bypass_mode cannot be combined"),
    (["rollout_rs=seq_sum_k1"], "rollout_rs_threshold must be set"),
    (["rollout_rs=seq_sum_k9", "rollout_rs_threshold=2"], "rollout_rs options must be among"),
    (["rollout_rs=token_k2", 'rollout_rs_threshold="0.5_2.0"'],
     "rollout_rs_threshold for token_k2 must be a positive number, got"),
    (["rollout_rs=token_k1,seq_max_k2", 'rollout_rs_threshold="1,2,3"'], "rollout_rs_threshold needs 1 or 2 values"),
    (["rollout_rs=seq_mean_k1", 'rollout_rs_threshold="2_0.5"'],
     "rollout_rs_threshold for seq_mean_k1 must be a positive number"),
    (["rollout_is_threshold_lower=3.0"], "rollout_is_threshold_lower must be <= rollout_is_threshold"),
    (["rollout_is_threshold=0"], "rollout_is_threshold must be > 0"),
    (["rollout_is=tokens"], "rollout_is must be one of"),
])
def test_config_rules_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=f"algorithm\\.rollout_correction\\.{message}"):
        load_config([f"algorithm.rollout_correction.{o}" for o in overrides])


def test_valid_settings_load():
    cfg = load_config(["algorithm.rollout_correction.rollout_is=sequence",
                       "algorithm.rollout_correction.rollout_rs=token_k1,seq_max_k3",
                       'algorithm.rollout_correction.rollout_rs_threshold="0.5_2,0.01"']).algorithm.rollout_correction
    assert cfg.corrects and cfg.needs_metrics and cfg.rollout_rs_threshold == "0.5_2,0.01"
    # A quoted "L_U" stays a string; unquoted, YAML reads 0.5_2 as the number 0.52 (what the docs warn about).
    for value, read in (('"0.5_2"', "0.5_2"), ("0.5_2", "0.52")):
        assert load_config(["algorithm.rollout_correction.rollout_rs=token_k1",
                            f"algorithm.rollout_correction.rollout_rs_threshold={value}"]
                           ).algorithm.rollout_correction.rollout_rs_threshold == read
    assert load_config(["algorithm.rollout_correction.bypass_mode=true"]).algorithm.rollout_correction.bypass_mode


# ---------------------------------------------------------------------------- weighted loss


def _hand_pg(logp, old, adv, mask, w, eps=0.2, clip_c=3.0):
    """PPO clip with dual clip, each token's term times its IS weight, token mean over ``mask``."""
    ratio = torch.exp(logp - old)
    clipped = torch.maximum(-adv * ratio, -adv * torch.clamp(ratio, 1 - eps, 1 + eps))
    mat = torch.where(adv < 0, torch.minimum(clipped, -adv * clip_c), clipped) * w
    return (mat * mask).sum() / mask.sum()


def test_policy_loss_weighs_each_token_by_its_is_weight():
    cfg = ActorConfig(use_kl_loss=False, entropy_coeff=0.0)
    logp = (OLD + 0.3 * torch.tensor(DELTA).flip(0)).requires_grad_(True)
    adv = torch.tensor([[0.8] * 4, [-1.2] * 4, [0.3] * 4]) * MASK
    weights = _per_token(lambda i, j, d: min(math.exp(d), 2.0))
    loss, metrics = policy_loss(logp, OLD, adv, MASK, cfg, rollout_is_weights=weights)
    expected = _hand_pg(logp, OLD, adv, MASK, weights)
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss, logp)
    (hand_grad,) = torch.autograd.grad(expected, logp)
    torch.testing.assert_close(grad, hand_grad)
    unweighted, _ = policy_loss(logp, OLD, adv, MASK, cfg)
    ones, _ = policy_loss(logp, OLD, adv, MASK, cfg, rollout_is_weights=torch.ones(3, 4))
    assert torch.equal(ones, unweighted) and not torch.allclose(loss, unweighted)


def test_worker_update_with_is_weights_and_rejection_matches_plain_torch(tmp_path):
    """One FSDP rank, micro-batches of 3: the gradients equal those of the hand loss where rejected
    tokens leave every term and the token count, and the policy term is weighted."""
    from rl.config import ModelConfig, OptimConfig
    from rl.workers.policy import PolicyWorker
    from tests.rl.workers.hand import capture_step_grads
    from tests.rl.workers.text_lm import TEXT_HOOKS, build_text_model, load_text_model, rollout_data, text_logprobs

    model_dir = build_text_model(tmp_path / "model", seed=0)
    batch, adv, old, ref = rollout_data(model_dir)
    gen = torch.Generator().manual_seed(5)
    mask = batch.response_mask.float()
    keep = (torch.rand(mask.shape, generator=gen) > 0.25).long() * batch.response_mask
    weights = (0.5 + 1.5 * torch.rand(mask.shape, generator=gen)) * mask
    assert 0 < int(keep.sum()) < int(batch.response_mask.sum())

    cfg = ActorConfig(ppo_mini_batch_size=8, ppo_micro_batch_size_per_worker=3, kl_loss_coef=0.01,
                      entropy_coeff=1e-3, optim=OptimConfig(lr=1e-3, weight_decay=0.01, grad_clip=1.0))
    worker = PolicyWorker(str(model_dir), ModelConfig(), cfg, role="actor", hooks=TEXT_HOOKS)
    grads = capture_step_grads(worker)
    worker.update_policy(batch, adv, old, ref, global_num_tokens=int(keep.sum()), global_num_seqs=8,
                         loss_mask=keep, rollout_is_weights=weights)

    model = load_text_model(str(model_dir), ModelConfig())
    logp, ent = text_logprobs(model, batch, 1.0, True)
    k = ref - logp
    kl = torch.clamp(torch.exp(k) - k - 1, -10, 10)
    keep_f = keep.float()
    loss = (_hand_pg(logp, old, adv, keep_f, weights) + 0.01 * (kl * keep_f).sum() / keep_f.sum()
            - 1e-3 * (ent * keep_f).sum() / keep_f.sum())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    (got,) = grads
    for name, p in model.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"{name}: {m}")
    worker.close()


# ---------------------------------------------------------------------------- driver (fake worker groups)


@pytest.fixture
def fake_driver(monkeypatch):
    """The fake groups of ``tests/rl/test_rl_train_step.py``; the actor also takes the correction's
    keyword arguments and records them."""
    import rl.driver
    from tests.rl import test_rl_train_step as harness

    monkeypatch.setattr(rl.driver, "_put", lambda value: value)
    monkeypatch.setattr("rl.models.inputs.encode_for_training", harness._fake_encode)

    class Policy(harness._Policy):
        def update_policy(self, encoded, advantages, old_log_probs, ref_log_probs, **correction):
            metrics = super().update_policy(encoded, advantages, old_log_probs, ref_log_probs)
            self.updates[-1]["correction"] = correction
            return metrics

    def make(tmp_path, *overrides, rollout_log_prob=None):
        trainer = harness._Trainer(harness._cfg(tmp_path, *overrides))
        trainer.groups.actor = Policy(trainer.events)
        if rollout_log_prob is not None:        # log-prob of sampled token id t (default: -0.5)
            base = trainer.groups.rollout

            class Rollout(harness._Rollout):
                def generate(self, records, sampling, on_groups=None):
                    pieces, busy = base.generate(records, sampling, on_groups)
                    for piece in pieces:
                        for r in piece.responses:
                            r.logprobs[:] = [rollout_log_prob(t) for t in r.token_ids]
                    return pieces, busy

            trainer.groups.rollout = Rollout(trainer.events)
        trainer.global_step = 1
        return trainer

    return make


def _step(trainer):
    metrics = trainer.train_step()
    (update,) = trainer.groups.actor.updates
    return metrics, update


def test_default_step_has_no_correction(tmp_path, fake_driver):
    trainer = fake_driver(tmp_path)
    metrics, update = _step(trainer)
    assert update["correction"] == {} and trainer.batch.rollout_correction is None
    assert "collect log-probs" in trainer.events
    assert not any(k.startswith(("rollout_corr/", "training/rollout")) for k in metrics)


def test_bypass_skips_the_old_log_prob_pass_and_trains_on_the_rollout_log_probs(tmp_path, fake_driver):
    trainer = fake_driver(tmp_path, "algorithm.rollout_correction.bypass_mode=true")
    metrics, update = _step(trainer)
    assert "start log-probs" not in trainer.events and "collect log-probs" not in trainer.events
    mask = trainer.batch.encoded.response_mask
    torch.testing.assert_close(update["old"], -0.5 * mask.float())     # the fake rollout's log-probs
    assert update["correction"] == {} and trainer.batch.rollout_correction is None
    assert "timing_s/old_log_prob" not in metrics and "timing_busy_s/old_log_prob" not in metrics


def test_bypass_equals_the_decoupled_step_when_rollout_and_actor_agree(tmp_path, fake_driver):
    from tests.rl.test_rl_train_step import _comparable

    agree = dict(rollout_log_prob=lambda t: -t / 10)     # the fake actor's log-prob of token t
    normal = fake_driver(tmp_path / "normal", **agree)
    bypass = fake_driver(tmp_path / "bypass", "algorithm.rollout_correction.bypass_mode=true", **agree)
    (m_normal, u_normal), (m_bypass, u_bypass) = _step(normal), _step(bypass)
    for key in ("old", "advantages"):
        assert torch.equal(u_normal[key], u_bypass[key]), key
    assert torch.equal(u_normal["encoded"].input_ids, u_bypass["encoded"].input_ids)
    skipped = {"timing_busy_s/old_log_prob"}
    assert {k: v for k, v in _comparable(m_normal).items() if k not in skipped} == _comparable(m_bypass)


def test_decoupled_token_is_sends_hand_weights_and_logs_the_mismatch(tmp_path, fake_driver):
    trainer = fake_driver(tmp_path, "algorithm.rollout_correction.rollout_is=token",
                          "algorithm.rollout_correction.rollout_is_threshold=0.58")
    metrics, update = _step(trainer)
    # old = -t/10 for token t = 10 + k, rollout = -0.5: ratio exp(-0.5 - k/10), truncated at 0.58
    enc = trainer.batch.encoded
    expected = torch.clamp(torch.exp(-enc.responses.float() / 10 + 0.5), max=0.58) * enc.response_mask
    assert set(update["correction"]) == {"rollout_is_weights"}
    torch.testing.assert_close(update["correction"]["rollout_is_weights"], expected)
    assert metrics["rollout_corr/rollout_is_max"] == pytest.approx(0.58)
    kl = (enc.responses / 10 - 0.5)[enc.response_mask.bool()].mean()      # E[log pi_rollout - log pi_old]
    assert metrics["rollout_corr/kl"] == pytest.approx(float(kl), rel=1e-5)
    assert metrics["training/rollout_probs_diff_valid"] == 1.0


def test_decoupled_rejection_sends_a_loss_mask_and_keeps_the_data_metrics(tmp_path, fake_driver):
    # k1 = log(pi_rollout / pi_old) = 0.5 + k/10 for response k; bounds [log 0.5, log 1.9] keep k = 0, 1.
    base = fake_driver(tmp_path / "base")
    trainer = fake_driver(tmp_path / "rs", "algorithm.rollout_correction.rollout_rs=token_k1",
                          'algorithm.rollout_correction.rollout_rs_threshold="0.5_1.9"')
    (m_base, _), (metrics, update) = _step(base), _step(trainer)
    enc = trainer.batch.encoded
    keep = (enc.responses < 12).long() * enc.response_mask
    assert set(update["correction"]) == {"loss_mask"} and torch.equal(update["correction"]["loss_mask"], keep)
    assert update["encoded"] is enc and torch.equal(enc.response_mask, base.batch.encoded.response_mask)
    assert metrics["rollout_corr/rollout_rs_masked_fraction"] == pytest.approx(6 / 12)
    for key in ("response_length/mean", "critic/advantages/mean", "critic/score/mean"):
        assert metrics[key] == m_base[key], key


# ---------------------------------------------------------------------------- the real rollout engine


def test_bypass_loss_on_real_rollout_log_probs_equals_the_actor_old_log_prob_loss(tiny_dir, samples):
    """The transformers rollout engine's log-probs, aligned by :func:`rollout_log_probs` with the
    encoded batch, are the actor's teacher-forced log-probs (same convention): the bypass loss and
    gradient equal the decoupled ones."""
    from rl.batch import flatten_rollout
    from rl.models.logprobs import policy_logprobs
    from rl.rollout.base import SamplingParams
    from rl.rollout.hf import HFRolloutBackend
    from tests.rl.models.conftest import sharpen_

    backend = HFRolloutBackend.from_pretrained(tiny_dir, micro_batch_size=2, seed=0)
    sharpen_(backend.model, seed=1)
    records = samples[:2]
    params = SamplingParams(n=3, temperature=0.8, max_tokens=12, stop=["</answer>"], seed=3)
    batch = flatten_rollout(records, [backend.generate(records, params)], n=3)
    encoded = batch.encode(backend.processor)
    mask = encoded.response_mask
    with torch.no_grad():
        actor, _ = policy_logprobs(backend.model, encoded, temperature=0.8)
    rollout = rollout_log_probs(batch, mask)
    assert (actor - rollout)[mask.bool()].abs().max() < 1e-4 and rollout[mask.bool()].std() > 0.3
    gen = torch.Generator().manual_seed(0)
    logp = (actor + 0.2 * torch.randn(actor.shape, generator=gen)).requires_grad_(True)
    adv = torch.randn(len(mask), 1, generator=gen).expand(mask.shape) * mask
    cfg = ActorConfig(use_kl_loss=False)
    (loss_actor, _), (loss_bypass, _) = (policy_loss(logp, old, adv, mask, cfg) for old in (actor, rollout))
    assert float(loss_actor.detach()) == pytest.approx(float(loss_bypass.detach()), abs=1e-5)
    grads = [torch.autograd.grad(loss, logp)[0] for loss in (loss_actor, loss_bypass)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-6)
