"""PolicyWorker with the real tiny Qwen2.5-VL (rl.models hooks, image prompts, M-RoPE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rl.config import ActorConfig, LoraConfig, ModelConfig, OptimConfig, SFTConfig
from rl.models.inputs import encode_for_training
from rl.models.loading import load_policy, load_processor
from rl.models.logprobs import policy_logprobs
from torch.distributed.fsdp import FSDPModule
from rl.workers.policy import PolicyWorker
from tests.rl.workers.hand import assert_weights_close, capture_step_grads, hand_loss

LR = 1e-4


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory) -> Path:
    from tests.tiny_vl import build_scaled_tiny_vl

    return build_scaled_tiny_vl(tmp_path_factory.mktemp("algos_vl") / "policy")


@pytest.fixture(scope="module")
def vl_data(vl_dir):
    processor = load_processor(vl_dir)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(2)]
    samples = [{"prompt": "Find the red circle.", "images": [images[0]]},
               {"prompt": "Where is the square?", "images": [images[1]]}]
    eos = processor.tokenizer.eos_token_id
    responses = [[40, 41, 42, eos], [50, 51], [60, 61, 62, 63, 64, eos], [70]]
    batch = encode_for_training(processor, [samples[0], samples[0], samples[1], samples[1]], responses)
    gen = torch.Generator().manual_seed(1)
    mask = batch.response_mask.float()
    with torch.no_grad():
        logp, _ = policy_logprobs(load_policy(vl_dir), batch)
    old = (logp + 0.3 * torch.randn(logp.shape, generator=gen)) * mask
    ref = (logp + 0.1 * torch.randn(logp.shape, generator=gen)) * mask
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * mask
    return batch, adv, old, ref


def actor_cfg(micro: int) -> ActorConfig:
    return ActorConfig(ppo_mini_batch_size=4, ppo_micro_batch_size_per_worker=micro, kl_loss_coef=0.01,
                       entropy_coeff=1e-3, optim=OptimConfig(lr=LR, weight_decay=0.01, grad_clip=1.0))


def weights(worker: PolicyWorker, checkpoint_names: bool = False) -> dict[str, torch.Tensor]:
    return {n: t for b in worker.state_dict_buckets(64, checkpoint_names=checkpoint_names) for n, t in b}


def test_vl_update_matches_plain_torch_and_exports(vl_dir, vl_data, tmp_path):
    batch, adv, old, ref = vl_data
    plain = load_policy(vl_dir)
    opt = torch.optim.AdamW(plain.parameters(), lr=LR, betas=(0.9, 0.999), weight_decay=0.01)
    logp, ent = policy_logprobs(plain, batch, with_entropy=True)
    hand_loss(logp, old, ref, adv, batch.response_mask, ent)[0].backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0))
    expected_grads = {k: p.grad.detach().clone() for k, p in plain.named_parameters()}
    opt.step()
    expected = {k: v.detach() for k, v in plain.state_dict().items()}

    # Adam's first step is ~lr * sign(g): the clipped gradients are the precise check; the weights
    # agree to 1% of lr wherever the gradient is clearly non-zero (float summation order moves
    # near-cancelling gradients' updates by up to lr).
    results = {}
    for micro in (1, 3):
        worker = PolicyWorker(str(vl_dir), ModelConfig(), actor_cfg(micro))
        units = [type(m).__name__ for m in worker.model.modules() if isinstance(m, FSDPModule)]
        assert sorted(units) == sorted(["FSDPQwen2_5_VLForConditionalGeneration"] + ["FSDPQwen2_5_VLDecoderLayer"] * 2
                                       + ["FSDPQwen2_5_VLVisionBlock"] * 2)
        grads = capture_step_grads(worker)
        metrics = worker.update_policy(batch, adv, old, ref)
        assert metrics["actor/grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
        assert len(grads) == 1 and set(grads[0]) == set(expected_grads)
        for name, grad in expected_grads.items():
            torch.testing.assert_close(grads[0][name], grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"{name}: {m}")
        results[micro] = weights(worker)
        assert_weights_close(results[micro], expected, atol=1e-6, grads=expected_grads, lr=LR)
    assert_weights_close(results[3], results[1], atol=1e-6, grads=expected_grads, lr=LR)

    out = worker.export_hf(str(tmp_path / "export"))
    load_processor(out)  # processor / tokenizer files were copied
    reloaded = load_policy(out)
    with torch.no_grad():
        expected_logp, _ = policy_logprobs(reloaded, batch)
    mask = batch.response_mask.bool()
    torch.testing.assert_close(worker.compute_log_prob(batch)[mask], expected_logp[mask], rtol=1e-5, atol=1e-5)
    # rollout-sync names are the checkpoint's (e.g. model.layers.* / visual.* for Qwen2.5-VL)
    files = load_file(str(out / "model.safetensors"))
    synced = weights(worker, checkpoint_names=True)
    assert set(files) <= set(synced)
    for name, tensor in files.items():
        torch.testing.assert_close(synced[name], tensor, rtol=0, atol=0)


def test_vl_lora_sft_export_reloads(vl_dir, vl_data, tmp_path):
    batch = vl_data[0]
    sft = SFTConfig(lr=1e-2, micro_batch_size_per_worker=2, lora=LoraConfig(rank=4, alpha=8), warmup_ratio=0.0)
    worker = PolicyWorker(str(vl_dir), ModelConfig(), actor_cfg(2), role="sft", sft_cfg=sft, total_steps=3)
    first = worker.sft_step(batch)
    mask = batch.response_mask.bool()
    with torch.no_grad():
        base_logp, _ = policy_logprobs(load_policy(vl_dir), batch)
    assert first["sft/loss"] == pytest.approx(float(-base_logp[mask].mean()), abs=1e-5)
    assert worker.sft_step(batch)["sft/loss"] < first["sft/loss"]
    out = worker.export_hf(str(tmp_path / "sft_export"))
    with torch.no_grad():
        reloaded_logp, _ = policy_logprobs(load_policy(out), batch)
    worker_logp = worker.compute_log_prob(batch)
    torch.testing.assert_close(worker_logp[mask], reloaded_logp[mask], rtol=1e-5, atol=1e-5)
    assert (reloaded_logp[mask] - base_logp[mask]).abs().max() > 1e-3  # the adapters were merged
