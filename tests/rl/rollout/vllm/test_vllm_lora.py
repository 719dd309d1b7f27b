"""vLLM serving a LoRA actor's adapter (``rl.rollout.vllm_lora``) with the real engine on CPU:
after an adapter sync the sampled log-probs are those of the merged model (transformers, teacher
forcing, fp32), a second sync replaces the first adapter, and before any sync the base model serves.

Runs where ``vllm`` imports: ``make test-vllm`` (``.venv-vllm``); skipped elsewhere.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.rollout_checks import teacher_forced

from .conftest import HAS_VLLM

pytestmark = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here; run `make test-vllm`")

RANK, ALPHA = 4, 8
TARGETS = ("q_proj", "v_proj", "o_proj", "gate_proj", "down_proj")


def _adapter(model: torch.nn.Module, seed: int) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    """A random adapter on the language model's TARGETS (peft saved names) and the model with it merged."""
    gen = torch.Generator().manual_seed(seed)
    merged = copy.deepcopy(model)
    modules = dict(merged.named_modules())
    adapter = {}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] not in TARGETS or "visual" in name.split("."):
            continue
        out_f, in_f = module.weight.shape
        a = torch.randn(RANK, in_f, generator=gen) * 0.3
        b = torch.randn(out_f, RANK, generator=gen) * 0.3
        adapter[f"base_model.model.{name}.lora_A.weight"] = a
        adapter[f"base_model.model.{name}.lora_B.weight"] = b
        with torch.no_grad():
            modules[name].weight.add_((b @ a) * (ALPHA / RANK))
    return adapter, merged


def _max_diff(model, processor, prompts, out) -> float:
    batch, lp = teacher_forced(model, processor, prompts, out)
    mask = batch.response_mask.bool()
    return float((lp - out.padded_logprobs(batch.response_width))[mask].abs().max())


def test_adapter_sync_serves_the_merged_model(sharp_dir, image_prompts):
    from rl.config import LoraConfig, RolloutConfig
    from rl.models.loading import load_policy, load_processor
    from rl.rollout.base import SamplingParams
    from rl.rollout.vllm import VLLMRolloutBackend

    torch.set_num_threads(1)
    cfg = RolloutConfig(backend="vllm", max_prompt_length=1024, max_response_length=64, temperature=1.0)
    backend = VLLMRolloutBackend(sharp_dir, cfg, device="cpu", lora=LoraConfig(rank=RANK, alpha=ALPHA))
    try:
        assert backend.engine_kwargs["enable_lora"] is True
        processor = load_processor(sharp_dir)
        base = load_policy(sharp_dir)
        params = SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=5)
        out = backend.generate(image_prompts, params)
        assert _max_diff(base, processor, image_prompts, out) < 1e-4      # no adapter yet: the base model
        for seed in (1, 2):
            adapter, merged = _adapter(base, seed)
            assert backend.update_weights(iter(adapter.items())) == len(adapter)
            backend.reset_caches()
            assert backend.last_sync["adapter"] == f"policy-v{seed}"
            out = backend.generate(image_prompts, params)
            assert _max_diff(merged, processor, image_prompts, out) < 1e-3
            assert _max_diff(base, processor, image_prompts, out) > 1e-2   # the adapter is applied
            streamed = dict(backend.generate_groups(image_prompts, params))  # the training route (enqueue)
            assert [r.token_ids for i in sorted(streamed) for r in streamed[i].responses] == out.token_ids
    finally:
        backend.close()
