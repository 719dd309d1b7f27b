"""LoRA during GRPO (``actor.lora.rank > 0``): what trains, what is synced, the reference, checkpoints.

Expected values are independent of the worker: parameter counts computed by hand from the layer
shapes, a plain (unsharded) peft model updated with the hand loss of ``tests/rl/workers/hand.py``
and torch's AdamW, peft's own ``merge_and_unload`` and ``disable_adapter``, the base model loaded
from disk, and the transformers rollout backend run on the merged model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rl.config import ActorConfig, LoraConfig, ModelConfig, OptimConfig, TinyModelConfig, load_config
from rl.workers.model_hooks import apply_lora
from rl.workers.policy import PolicyWorker
from tests.rl.workers.hand import assert_weights_close, hand_loss
from tests.rl.workers.text_lm import TEXT_HOOKS, build_text_model, load_text_model, rollout_data, text_logprobs

LR = 1e-2
RANK, ALPHA = 4, 8
# Tiny text LM (tests/rl/workers/text_lm.py): hidden 32, MLP 64, 2 heads of 16, 1 kv head, 2 layers.
# LoRA adds r * (in + out) per adapted linear: q 32->32, k 32->16, v 32->16, o 32->32,
# gate 32->64, up 32->64, down 64->32.
TEXT_LORA_PARAMS = 2 * RANK * ((32 + 32) + 2 * (32 + 16) + (32 + 32) + 3 * (32 + 64))


def lora_actor_cfg(rank: int = RANK, **kw) -> ActorConfig:
    return ActorConfig(ppo_mini_batch_size=8, ppo_micro_batch_size_per_worker=3, kl_loss_coef=0.01,
                       entropy_coeff=1e-3, optim=OptimConfig(lr=LR, weight_decay=0.01, grad_clip=1.0),
                       lora=LoraConfig(rank=rank, alpha=ALPHA), **kw)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_text_model(tmp_path_factory.mktemp("lora_text_lm") / "model", seed=0)


def text_worker(model_dir, cfg=None, seed=0, **kw) -> PolicyWorker:
    return PolicyWorker(str(model_dir), ModelConfig(), cfg or lora_actor_cfg(), role="actor", hooks=TEXT_HOOKS,
                        seed=seed, **kw)


def update(worker, data):
    batch, adv, old, ref = data
    return worker.update_policy(batch, adv, old, ref, global_num_tokens=int(batch.response_mask.sum()),
                                global_num_seqs=len(batch))


def plain_peft(model_dir, seed=0):
    """The unsharded peft model the worker starts from (same seed: same adapter initialisation)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return apply_lora(load_text_model(str(model_dir), ModelConfig()), LoraConfig(rank=RANK, alpha=ALPHA),
                          language_model_only=True)


def worker_state(worker) -> dict[str, torch.Tensor]:
    from rl.workers.fsdp import iter_full_tensors

    return dict(iter_full_tensors(worker.model))


def synced(worker, **kw) -> dict[str, torch.Tensor]:
    return {n: t for bucket in worker.state_dict_buckets(64, checkpoint_names=False, **kw) for n, t in bucket}


# ----------------------------------------------------------------------------- what trains


def test_only_adapters_train_and_the_update_matches_a_plain_peft_model(model_dir):
    data = rollout_data(model_dir)
    worker = text_worker(model_dir)
    counts = worker.parameter_counts()
    full = sum(p.numel() for p in load_text_model(str(model_dir), ModelConfig()).parameters())
    assert counts == {"trainable": TEXT_LORA_PARAMS, "total": full + TEXT_LORA_PARAMS}
    trainable = {n for n, p in worker.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    optimised = {id(p) for group in worker.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in worker.model.parameters() if p.requires_grad}

    before = worker_state(worker)
    update(worker, data)
    after = worker_state(worker)
    state_of = {id(p): s for p, s in worker.optimizer.state.items()}
    assert len(state_of) == len(trainable)            # Adam moments exist for the adapters only
    for name in before:
        if ".lora_" in name:
            continue
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)   # the base is frozen
    assert max(float((after[n] - before[n]).abs().max()) for n in before if ".lora_B." in n) > 1e-4

    # independent: hand loss on an unsharded peft model, clip + AdamW over its trainable parameters
    batch, adv, old, ref = data
    model = plain_peft(model_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), weight_decay=0.01)
    logp, ent = text_logprobs(model, batch, 1.0, True)
    hand_loss(logp, old, ref, adv, batch.response_mask, ent)[0].backward()
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    expected = {k: v.detach() for k, v in model.state_dict().items()}
    assert_weights_close(after, expected, atol=1e-6, lr=LR)   # Adam: a near-zero gradient still moves by ~lr


# ----------------------------------------------------------------------------- weight sync + reference


def test_synced_weights_are_the_peft_merge_and_the_reference_is_the_base(model_dir):
    data = rollout_data(model_dir, seed=1)
    worker = text_worker(model_dir)
    for _ in range(2):
        update(worker, data)
    adapters = worker_state(worker)
    plain = plain_peft(model_dir)
    plain.load_state_dict(adapters)
    batch = data[0]
    with torch.no_grad():
        adapted_logp = text_logprobs(plain, batch)[0]
        with plain.disable_adapter():
            peft_base_logp = text_logprobs(plain, batch)[0]
    merged = plain.merge_and_unload()
    sent = synced(worker)
    assert set(sent) == set(merged.state_dict())                       # the names of full fine-tuning
    assert not any("lora" in n or "base_layer" in n for n in sent)
    assert_weights_close(sent, {k: v.detach() for k, v in merged.state_dict().items()}, atol=1e-6)

    mask = batch.response_mask.float()
    base_logp = text_logprobs(load_text_model(str(model_dir), ModelConfig()), batch)[0].detach() * mask
    ref = worker.compute_ref_log_prob(batch)
    torch.testing.assert_close(ref, base_logp, rtol=0, atol=1e-6)      # the model on disk, no adapters
    torch.testing.assert_close(ref, peft_base_logp * mask, rtol=0, atol=1e-6)
    actor = worker.compute_log_prob(batch)
    torch.testing.assert_close(actor, adapted_logp * mask, rtol=0, atol=1e-5)
    assert float((actor - ref).abs().max()) > 1e-3                     # the adapters matter
    # the context restored the adapters
    torch.testing.assert_close(worker.compute_log_prob(batch), actor, rtol=0, atol=0)

    adapter = {n: t for bucket in worker.adapter_buckets(1) for n, t in bucket}
    assert set(adapter) == {n.replace(".default.", ".") for n in adapters if ".lora_" in n}
    assert sum(t.numel() for t in adapter.values()) == TEXT_LORA_PARAMS
    full = PolicyWorker(str(model_dir), ModelConfig(), ActorConfig(), role="actor", hooks=TEXT_HOOKS)
    with pytest.raises(RuntimeError, match="LoRA"):
        full.compute_ref_log_prob(batch)


def test_full_fine_tuning_is_unchanged_by_default(model_dir):
    worker = PolicyWorker(str(model_dir), ModelConfig(), ActorConfig(), role="actor", hooks=TEXT_HOOKS)
    assert not worker.uses_lora and not worker.adapters_only
    counts = worker.parameter_counts()
    assert counts["trainable"] == counts["total"]


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_holds_adapters_and_resumes_exactly(model_dir, tmp_path):
    import torch.distributed.checkpoint as dcp

    data, later = rollout_data(model_dir, seed=2), rollout_data(model_dir, seed=3)
    worker = text_worker(model_dir, total_steps=4)
    update(worker, data)
    worker.save_checkpoint(str(tmp_path / "ckpt"))
    state = json.loads((tmp_path / "ckpt" / "worker_state.json").read_text())
    assert state["adapters_only"] is True and state["lora"]["scaling"] == ALPHA / RANK
    keys = dcp.FileSystemReader(str(tmp_path / "ckpt")).read_metadata().state_dict_metadata
    model_keys = [k for k in keys if k.startswith("model.")]
    assert model_keys and all(".lora_A." in k or ".lora_B." in k for k in model_keys)
    assert any(k.startswith("optimizer.state.") for k in keys)

    resumed = text_worker(model_dir, seed=7, total_steps=4)           # another adapter initialisation
    assert max(float((worker_state(resumed)[n] - worker_state(worker)[n]).abs().max())
               for n in worker_state(worker) if ".lora_A." in n) > 0
    resumed.load_checkpoint(str(tmp_path / "ckpt"))
    assert resumed.global_step == 1
    assert_weights_close(worker_state(resumed), worker_state(worker), atol=0)
    m1, m2 = update(worker, later), update(resumed, later)            # Adam moments restored too
    assert m1 == m2
    assert_weights_close(worker_state(resumed), worker_state(worker), atol=0)

    full = PolicyWorker(str(model_dir), ModelConfig(), ActorConfig(), role="actor", hooks=TEXT_HOOKS)
    with pytest.raises(RuntimeError, match="lora"):
        full.load_checkpoint(str(tmp_path / "ckpt"))


# ----------------------------------------------------------------------------- config and placement


def test_lora_runs_the_kl_loss_without_reference_workers():
    from rl.config import ConfigError
    from rl.placement import role_notes, roles_for
    from rl.workers.lora import lora_reference, serves_adapter

    cfg = load_config(["recipe=quickstart", "actor.lora.rank=8", "cluster.reference.num_workers=0"])
    assert cfg.actor.use_kl_loss and cfg.actor.kl_loss_coef > 0
    assert roles_for(cfg)["reference"] == 0 and lora_reference(cfg) and not serves_adapter(cfg)
    with_workers = load_config(["recipe=quickstart", "actor.lora.rank=8"])
    assert roles_for(with_workers)["reference"] == 0
    assert any("adapters disabled" in line for line in role_notes(with_workers))
    with pytest.raises(ConfigError, match="cluster.reference.num_workers"):
        load_config(["recipe=quickstart", "cluster.reference.num_workers=0"])
    default = load_config(["recipe=quickstart"])
    assert default.actor.lora.rank == 0 and roles_for(default)["reference"] >= 1 and not lora_reference(default)
    gpu = load_config(["recipe=quickstart", "actor.lora.rank=8", "rollout.backend=vllm", "trainer.device=cuda"])
    assert serves_adapter(gpu)


# ----------------------------------------------------------------------------- Qwen2.5-VL: rollout + export


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory) -> Path:
    from tests.tiny_vl import build_scaled_tiny_vl

    return build_scaled_tiny_vl(tmp_path_factory.mktemp("lora_vl") / "policy")


@pytest.fixture(scope="module")
def vl_prompts():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(2)]
    return [{"prompt": "Find the red circle.", "images": [images[0]]},
            {"prompt": "Where is the square?", "images": [images[1]]}]


def _vl_update_data(vl_dir, prompts):
    from rl.models.inputs import encode_for_training
    from rl.models.loading import load_policy, load_processor
    from rl.models.logprobs import policy_logprobs

    processor = load_processor(vl_dir)
    eos = processor.tokenizer.eos_token_id
    batch = encode_for_training(processor, [prompts[0], prompts[0], prompts[1], prompts[1]],
                                [[40, 41, 42, eos], [50, 51], [60, 61, 62, 63, 64, eos], [70]])
    with torch.no_grad():
        logp, _ = policy_logprobs(load_policy(vl_dir), batch)
    mask = batch.response_mask.float()
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None] * mask
    return batch, adv, logp * mask, logp * mask


def test_vl_rollout_generates_as_the_merged_model_and_export_merges(vl_dir, vl_prompts, tmp_path):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from rl.checkpoint import CheckpointManager, TrainerState
    from rl.config import to_yaml
    from rl.export import export_checkpoint
    from rl.models.loading import load_policy, load_processor
    from rl.rollout.base import SamplingParams
    from rl.rollout.hf import HFRolloutBackend
    from rl.workers.lora import is_adapter_name

    cfg = ActorConfig(ppo_mini_batch_size=4, ppo_micro_batch_size_per_worker=2, kl_loss_coef=0.01,
                      optim=OptimConfig(lr=0.05, weight_decay=0.0, grad_clip=0.0), lora=LoraConfig(rank=RANK, alpha=ALPHA))
    worker = PolicyWorker(str(vl_dir), ModelConfig(), cfg, role="actor", total_steps=3)
    hidden, mlp = 64, 128    # TinyModelConfig: 1 head of 64, 1 kv head, 2 layers
    assert worker.parameter_counts()["trainable"] == 2 * RANK * (4 * (hidden + hidden) + 3 * (hidden + mlp))
    adapted = {n for n, _ in worker.model.named_parameters() if ".lora_A." in n}
    assert adapted and all("language_model" in n and "visual" not in n for n in adapted)
    data = _vl_update_data(vl_dir, vl_prompts)
    for _ in range(3):
        update(worker, data)

    sent = synced(worker)
    processor = load_processor(vl_dir)
    backend = HFRolloutBackend(load_policy(vl_dir), processor)
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=12)
    before = backend.generate(vl_prompts, greedy).token_ids
    backend.update_weights(iter(sent.items()))
    backend.reset_caches()
    after = backend.generate(vl_prompts, greedy).token_ids

    # independent merge: peft's merge_and_unload of a fresh model holding the worker's adapters
    targets = sorted({n.removeprefix("base_model.model.").split(".lora_A.")[0] for n in adapted})
    plain = get_peft_model(load_policy(vl_dir), PeftLoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=targets))
    plain.load_state_dict(worker_state(worker))
    merged = plain.merge_and_unload()
    assert_weights_close(sent, {k: v.detach() for k, v in merged.state_dict().items()}, atol=1e-6)
    expected = HFRolloutBackend(merged, processor).generate(vl_prompts, greedy).token_ids
    assert after == expected
    assert after != before    # the update changed the greedy output, so the comparison can fail

    # adapters-only checkpoint -> launch.export merges them into the starting policy's weights
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_cfg = load_config(["recipe=quickstart", f"trainer.run_dir={run_dir}", f"model.path={vl_dir}",
                           f"actor.lora.rank={RANK}", f"actor.lora.alpha={ALPHA}"])
    (run_dir / "config.yaml").write_text(to_yaml(run_cfg))
    manager = CheckpointManager(run_dir)
    manager.begin(3)
    worker.save_checkpoint(str(manager.model_dir(3)))
    manager.finalize(3, TrainerState(step=3))
    import torch.distributed.checkpoint as dcp

    keys = dcp.FileSystemReader(str(manager.model_dir(3))).read_metadata().state_dict_metadata
    assert all(is_adapter_name(k) for k in keys if k.startswith("model."))   # not even the tied lm_head
    out = export_checkpoint(run_dir, progress=lambda line: None)
    from transformers import AutoModelForImageTextToText

    exported = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).state_dict()
    assert not any(is_adapter_name(n) or "base_layer" in n for n in exported)
    assert_weights_close(exported, {k: v.detach() for k, v in merged.state_dict().items()}, atol=1e-6)


# ----------------------------------------------------------------------------- vLLM LoRA serving (no vLLM)


def test_vllm_adapter_folder_and_engine_arguments(tmp_path):
    from safetensors.torch import load_file

    from rl.rollout.vllm import engine_kwargs
    from rl.rollout.vllm_lora import AdapterPublisher, lora_engine_kwargs, write_adapter
    from rl.rollout.config import RolloutConfig

    assert lora_engine_kwargs(4) == {"enable_lora": True, "max_lora_rank": 8, "max_loras": 1}
    assert lora_engine_kwargs(8)["max_lora_rank"] == 8 and lora_engine_kwargs(9)["max_lora_rank"] == 16
    with pytest.raises(ValueError):
        lora_engine_kwargs(1000)
    kw = engine_kwargs("/m", RolloutConfig(backend="vllm"), device="cuda", overrides=lora_engine_kwargs(8))
    assert kw["enable_lora"] is True and kw["max_lora_rank"] == 8

    a, b = torch.randn(RANK, 6), torch.randn(5, RANK)
    names = {"base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight": a,
             "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_B.weight": b}
    folder = write_adapter(tmp_path / "ad", names, LoraConfig(rank=RANK, alpha=ALPHA), "/base")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] == RANK and config["lora_alpha"] == ALPHA and config["target_modules"] == ["q_proj"]
    assert config["bias"] == "none" and config["peft_type"] == "LORA"
    loaded = load_file(str(folder / "adapter_model.safetensors"))
    assert set(loaded) == set(names) and torch.equal(loaded[next(iter(names))], a)
    with pytest.raises(ValueError, match="lora_B"):
        write_adapter(tmp_path / "half", dict(list(names.items())[:1]), LoraConfig(rank=RANK, alpha=ALPHA))
    with pytest.raises(ValueError, match="peft adapter tensor name"):
        write_adapter(tmp_path / "bad", {"model.q_proj.weight": a}, LoraConfig(rank=RANK, alpha=ALPHA))

    publisher = AdapterPublisher(LoraConfig(rank=RANK, alpha=ALPHA), "/base", root=tmp_path / "pub")
    assert publisher.request() is None and not publisher.open   # before the first sync: the base model
    assert publisher.add(iter(names.items())) == 2 and publisher.open
    assert publisher.publish() == (1, None) and publisher.name == "policy-v1"
    first = publisher.path
    publisher.add(iter(names.items()))
    assert publisher.publish() == (2, 1) and publisher.name == "policy-v2"
    assert not first.exists() and (publisher.path / "adapter_model.safetensors").is_file()
