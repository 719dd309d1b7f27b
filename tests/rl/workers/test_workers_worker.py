"""PolicyWorker on one rank (FSDP2 on a 1-rank gloo mesh) with a tiny text LM.

Expected values come from a plain (unsharded) transformers model updated with the
plain-torch loss of tests/rl/workers/hand.py and torch's AdamW.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rl.config import ActorConfig, FSDPConfig, LoraConfig, ModelConfig, OptimConfig, SFTConfig
from rl.workers.policy import PolicyWorker
from tests.rl.workers.hand import assert_weights_close, capture_step_grads, hand_loss
from tests.rl.workers.text_lm import (TEXT_HOOKS, build_text_model, load_text_model, make_batch, rollout_data,
                                 text_logprobs)

LR = 1e-3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_text_model(tmp_path_factory.mktemp("algos_text_lm") / "model", seed=0)


def actor_cfg(micro: int = 8, mini: int = 8, epochs: int = 1, **optim) -> ActorConfig:
    return ActorConfig(
        ppo_mini_batch_size=mini, ppo_micro_batch_size_per_worker=micro, ppo_epochs=epochs,
        kl_loss_coef=0.01, entropy_coeff=1e-3, clip_ratio_low=0.2, clip_ratio_high=0.2,
        optim=OptimConfig(lr=LR, weight_decay=0.01, grad_clip=1.0, **optim),
    )


def make_worker(model_dir, cfg, role="actor", **kw) -> PolicyWorker:
    return PolicyWorker(str(model_dir), ModelConfig(), cfg, role=role, hooks=TEXT_HOOKS, **kw)


def weights(worker: PolicyWorker) -> dict[str, torch.Tensor]:
    return {n: t for bucket in worker.state_dict_buckets(64, checkpoint_names=False) for n, t in bucket}


def reference_update(model_dir, batch, adv, old, ref, mini_batches, epochs=1, lr=LR, grad_norms=None, grads=None):
    """Plain model, hand loss (token mean per mini-batch), torch clip + AdamW; appends the grad
    norms and the clipped gradients of every step."""
    model = load_text_model(str(model_dir), ModelConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.01)
    for _ in range(epochs):
        for rows in mini_batches:
            sub = batch.select(rows)
            logp, ent = text_logprobs(model, sub, 1.0, True)
            loss = hand_loss(logp, old[rows], ref[rows], adv[rows], sub.response_mask, ent)[0]
            opt.zero_grad()
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if grad_norms is not None:
                grad_norms.append(float(norm))
            if grads is not None:
                grads.append({k: p.grad.detach().clone() for k, p in model.named_parameters()})
            opt.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


def assert_grads_close(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for step, (got, want) in enumerate(zip(actual, expected)):
        assert set(got) == set(want)
        for name, grad in want.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"step {step} {name}: {m}")


def test_update_matches_plain_torch_for_every_micro_batch_size(model_dir):
    batch, adv, old, ref = rollout_data(model_dir)
    grad_norms, expected_grads = [], []
    expected = reference_update(model_dir, batch, adv, old, ref, [list(range(8))], grad_norms=grad_norms,
                                grads=expected_grads)
    initial = load_text_model(str(model_dir), ModelConfig()).state_dict()
    assert max((expected[k] - initial[k]).abs().max() for k in initial) > 1e-4  # the update moves weights
    for micro in (1, 2, 3, 4, 8):
        worker = make_worker(model_dir, actor_cfg(micro=micro))
        grads = capture_step_grads(worker)
        metrics = worker.update_policy(batch, adv, old, ref, global_num_tokens=int(batch.response_mask.sum()),
                                       global_num_seqs=8)
        assert_grads_close(grads, expected_grads)
        assert_weights_close(weights(worker), expected, grads=expected_grads[0], lr=LR)
        # Adam's first step is blind to the gradient's scale; the grad norm is not
        assert metrics["actor/grad_norm"] == pytest.approx(grad_norms[0], rel=1e-5)
    with torch.no_grad():
        logp, ent = text_logprobs(load_text_model(str(model_dir), ModelConfig()), batch, 1.0, True)
        _, pg, kl, entropy, clipfrac = hand_loss(logp, old, ref, adv, batch.response_mask, ent)
    assert metrics["actor/pg_loss"] == pytest.approx(float(pg), abs=1e-5)
    assert metrics["actor/kl_loss"] == pytest.approx(float(kl), abs=1e-6)
    assert metrics["actor/entropy"] == pytest.approx(float(entropy), abs=1e-5)
    assert metrics["actor/pg_clipfrac"] == pytest.approx(float(clipfrac), abs=1e-6)
    assert 0 < metrics["actor/pg_clipfrac"] < 1
    assert metrics["actor/lr"] == pytest.approx(LR) and metrics["actor/grad_norm"] > 0


def test_mini_batches_and_epochs_match_plain_torch(model_dir):
    batch, adv, old, ref = rollout_data(model_dir, seed=1)
    grad_norms, expected_grads = [], []
    expected = reference_update(model_dir, batch, adv, old, ref, [[0, 1, 2, 3], [4, 5, 6, 7]], epochs=2,
                                grad_norms=grad_norms, grads=expected_grads)
    worker = make_worker(model_dir, actor_cfg(micro=3, mini=2, epochs=2), rollout_n=2)  # 2 prompts x n=2 per mini
    grads = capture_step_grads(worker)
    metrics = worker.update_policy(batch, adv, old, ref)
    assert_grads_close(grads, expected_grads)
    assert_weights_close(weights(worker), expected)
    assert metrics["actor/grad_norm"] == pytest.approx(sum(grad_norms) / 4, rel=1e-5)


@pytest.mark.parametrize("fsdp, gradient_checkpointing", [
    (FSDPConfig(cpu_offload=True), False),
    (FSDPConfig(reshard_after_forward=False), False),
    (FSDPConfig(), True),
    (FSDPConfig(param_dtype="bfloat16"), False),
])
def test_fsdp_options_keep_the_gradients(model_dir, fsdp, gradient_checkpointing):
    batch, adv, old, ref = rollout_data(model_dir)
    expected_grads = []
    reference_update(model_dir, batch, adv, old, ref, [list(range(8))], grads=expected_grads)
    cfg = actor_cfg(micro=3)
    cfg.fsdp = fsdp
    worker = PolicyWorker(str(model_dir), ModelConfig(gradient_checkpointing=gradient_checkpointing), cfg,
                          hooks=TEXT_HOOKS)
    grads = capture_step_grads(worker)
    worker.update_policy(batch, adv, old, ref)
    if fsdp.param_dtype == "bfloat16":  # bf16 compute: same gradient up to bf16 rounding
        for name, grad in expected_grads[0].items():
            cosine = torch.nn.functional.cosine_similarity(grads[0][name].flatten(), grad.flatten(), dim=0)
            assert cosine > 0.99 or grad.abs().max() < 1e-6, name
    else:
        assert_grads_close(grads, expected_grads)


def test_compute_log_prob_matches_plain_model(model_dir):
    batch = make_batch(7, seed=2)
    worker = make_worker(model_dir, actor_cfg(micro=3), role="reference")
    logp = worker.compute_log_prob(batch)
    with torch.no_grad():
        expected, _ = text_logprobs(load_text_model(str(model_dir), ModelConfig()), batch)
    mask = batch.response_mask.bool()
    torch.testing.assert_close(logp[mask], expected[mask], rtol=1e-5, atol=1e-6)
    assert torch.all(logp[~mask] == 0)
    with pytest.raises(RuntimeError, match="reference"):
        worker.update_policy(batch, torch.zeros_like(logp), logp, logp)


def test_update_input_errors(model_dir):
    batch, adv, old, ref = rollout_data(model_dir)
    worker = make_worker(model_dir, actor_cfg(mini=4))
    with pytest.raises(ValueError, match="old_log_probs"):
        worker.update_policy(batch, adv, None, ref)  # 2 mini-batches need the sampling policy's log-probs
    with pytest.raises(ValueError, match="global_num_tokens"):
        worker.update_policy(batch, adv, old, ref, global_num_tokens=1)
    with pytest.raises(ValueError, match="advantages"):
        worker.update_policy(batch, adv[:, :2], old, ref)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        make_worker(model_dir.parent / "nowhere", actor_cfg())


def test_checkpoint_round_trip_resumes_exactly(model_dir, tmp_path):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    cfg = actor_cfg(micro=4, lr_scheduler="cosine", warmup_ratio=0.0)
    data1, data2 = rollout_data(model_dir, seed=3), rollout_data(model_dir, seed=4)
    first = make_worker(model_dir, cfg, total_steps=4)
    first.update_policy(*data1)
    first.save_checkpoint(str(tmp_path / "ckpt"))
    saved_weights = weights(first)
    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    saved_optim = copy.deepcopy(get_optimizer_state_dict(first.model, first.optimizer, options=full))
    uninterrupted = first.update_policy(*data2)
    final_weights = weights(first)

    resumed = make_worker(model_dir, cfg, total_steps=4)
    resumed.load_checkpoint(str(tmp_path / "ckpt"))
    assert resumed.global_step == 1
    assert_weights_close(weights(resumed), saved_weights, atol=0)
    loaded_optim = get_optimizer_state_dict(resumed.model, resumed.optimizer, options=full)
    for name, state in saved_optim["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(loaded_optim["state"][name][key], value, rtol=0, atol=0)
    after = resumed.update_policy(*data2)
    assert after["actor/lr"] == pytest.approx(uninterrupted["actor/lr"]) == LR * 0.5 * (1 + math.cos(math.pi / 4))
    assert_weights_close(weights(resumed), final_weights, atol=0)


def test_checkpoint_errors_name_the_path(model_dir, tmp_path):
    worker = make_worker(model_dir, actor_cfg())
    with pytest.raises(FileNotFoundError, match="missing_ckpt"):
        worker.load_checkpoint(str(tmp_path / "missing_ckpt"))
    worker.save_checkpoint(str(tmp_path / "ckpt"))
    for shard in (tmp_path / "ckpt").glob("*.distcp"):
        shard.write_bytes(b"corrupt")
    with pytest.raises(RuntimeError, match="ckpt"):
        worker.load_checkpoint(str(tmp_path / "ckpt"))
    (tmp_path / "ckpt" / ".metadata").unlink()
    with pytest.raises(FileNotFoundError, match=".metadata"):
        worker.load_checkpoint(str(tmp_path / "ckpt"))


def test_export_hf_reloads_with_same_logits_and_bucket_names(model_dir, tmp_path):
    batch, adv, old, ref = rollout_data(model_dir)
    worker = make_worker(model_dir, actor_cfg(micro=4))
    worker.update_policy(batch, adv, old, ref)
    out = worker.export_hf(str(tmp_path / "hf"))
    assert (out / "tokenizer_config.json").is_file()
    reloaded = AutoModelForCausalLM.from_pretrained(str(out))
    with torch.no_grad():
        expected = reloaded(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        worker.model.eval()
        actual = worker.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)

    files = load_file(str(out / "model.safetensors"))
    buckets = list(worker.state_dict_buckets(bucket_mb=0.02))
    assert len(buckets) > 1
    limit = 0.02 * 1024 * 1024
    for bucket in buckets:
        assert len(bucket) == 1 or sum(t.numel() * t.element_size() for _, t in bucket) <= limit
    synced = {n: t for bucket in buckets for n, t in bucket}
    assert set(files) <= set(synced)
    for name, tensor in files.items():
        torch.testing.assert_close(synced[name], tensor, rtol=0, atol=0)


def test_sft_lora_loss_merge_and_export(model_dir, tmp_path):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from rl.workers.fsdp import iter_full_tensors

    batch = make_batch(8, seed=5)
    sft = SFTConfig(lr=1e-2, micro_batch_size_per_worker=3, lora=LoraConfig(rank=4, alpha=8),
                    lr_scheduler="constant", warmup_ratio=0.0)
    worker = make_worker(model_dir, actor_cfg(), role="sft", sft_cfg=sft, total_steps=5)
    with torch.no_grad():
        logp, _ = text_logprobs(load_text_model(str(model_dir), ModelConfig()), batch)
    mask = batch.response_mask.bool()
    first = worker.sft_step(batch, global_num_tokens=int(mask.sum()))
    assert first["sft/loss"] == pytest.approx(float(-logp[mask].mean()), abs=1e-5)  # LoRA B starts at 0
    losses = [worker.sft_step(batch)["sft/loss"] for _ in range(3)]
    assert losses[-1] < first["sft/loss"]

    # independent merge: peft's merge_and_unload on an unsharded copy holding the worker's adapters
    adapters = dict(iter_full_tensors(worker.model))
    plain = get_peft_model(load_text_model(str(model_dir), ModelConfig()),
                           PeftLoraConfig(r=4, lora_alpha=8, target_modules=list(sft.lora.target_modules)))
    plain.load_state_dict(adapters)
    merged = plain.merge_and_unload()
    assert_weights_close(weights(worker), {k: v.detach() for k, v in merged.state_dict().items()}, atol=1e-6)

    out = worker.export_hf(str(tmp_path / "sft_hf"))
    reloaded = AutoModelForCausalLM.from_pretrained(str(out))
    with torch.no_grad():
        torch.testing.assert_close(text_logprobs(reloaded, batch)[0], text_logprobs(merged, batch)[0],
                                   rtol=1e-5, atol=1e-5)

    # LoRA checkpoints round-trip; another role cannot load them
    worker.save_checkpoint(str(tmp_path / "sft_ckpt"))
    resumed = make_worker(model_dir, actor_cfg(), role="sft", sft_cfg=sft, total_steps=5, seed=123)
    resumed.load_checkpoint(str(tmp_path / "sft_ckpt"))
    assert resumed.global_step == 4
    assert_weights_close(dict(iter_full_tensors(resumed.model)), adapters, atol=0)
    with pytest.raises(RuntimeError, match="'sft'"):
        make_worker(model_dir, actor_cfg()).load_checkpoint(str(tmp_path / "sft_ckpt"))
