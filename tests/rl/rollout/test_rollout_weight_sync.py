"""Weight sync actor -> rollout: after a GRPO update, the rollout engine samples from the actor's
distribution (its sampled-token log-probs equal the updated actor's teacher-forced ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl.config import ActorConfig, ModelConfig, RolloutConfig
from rl.models.inputs import encode_for_training
from rl.rollout import build_rollout_backend
from rl.rollout.base import SamplingParams
from rl.workers.fsdp import free_port
from rl.workers.policy import PolicyWorker


@pytest.fixture
def actor(tiny_dir):
    cfg = ActorConfig(ppo_mini_batch_size=2, ppo_micro_batch_size_per_worker=4, kl_loss_coef=0.0, use_kl_loss=False)
    cfg.optim.lr = 5e-2                     # a large step, so stale weights would be obvious
    worker = PolicyWorker(str(tiny_dir), ModelConfig(), cfg, 0, 1, "127.0.0.1", free_port(), role="actor",
                          total_steps=1, rollout_n=2)
    try:
        yield worker
    finally:
        worker.close()


def test_rollout_matches_actor_after_update_and_sync(actor, tiny_dir, samples, processor):
    backend = build_rollout_backend(RolloutConfig(), tiny_dir, seed=3)
    params = SamplingParams(n=2, temperature=1.0, max_tokens=12)
    prompts = samples[:2]
    out = backend.generate(prompts, params)
    batch = encode_for_training(processor, [prompts[g] for g in out.group_ids], out.token_ids)
    before = actor.compute_log_prob(batch)

    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * batch.response_mask
    actor.update_policy(batch, advantages, before, None)
    after = actor.compute_log_prob(batch)
    mask = batch.response_mask.bool()
    assert (after - before)[mask].abs().max() > 1e-2          # the update moved the policy

    sent = sum(backend.update_weights(iter(b)) for b in actor.state_dict_buckets(0.05, checkpoint_names=False))
    assert sent == len(list(actor.hf_model.state_dict()))
    backend.reset_caches()
    fresh = backend.generate(prompts, params)
    batch2 = encode_for_training(processor, [prompts[g] for g in fresh.group_ids], fresh.token_ids)
    expected = actor.compute_log_prob(batch2)
    got = fresh.padded_logprobs(expected.shape[1])
    m2 = batch2.response_mask.bool()
    np.testing.assert_allclose(got[m2].numpy(), expected[m2].numpy(), atol=1e-4)
