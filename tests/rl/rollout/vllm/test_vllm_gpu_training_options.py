"""Training options of the GPU production path (the actor beside the vLLM engine), exercised on
CPU as far as torch allows: FSDP2 bf16 mixed precision, gradient checkpointing, CPU offload;
the GPU-only choices (flash-attention 2, a CUDA rollout engine) fail early with the fix named.

Runs in the main environment (FSDP2 policy worker, verl losses); skipped in the vLLM one.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytest.importorskip("verl", reason="the policy worker needs verl (main environment)")

from rl.config import ActorConfig, FSDPConfig, ModelConfig, OptimConfig, RolloutConfig  # noqa: E402
from rl.models.loading import check_attn_implementation, load_policy  # noqa: E402
from rl.workers.policy import PolicyWorker  # noqa: E402
from tests.rl.workers.text_lm import TEXT_HOOKS, build_text_model, rollout_data  # noqa: E402

HAS_FLASH_ATTN = importlib.util.find_spec("flash_attn") is not None


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_text_model(tmp_path_factory.mktemp("gpu_opts_lm") / "model", seed=0)


@pytest.fixture(scope="module")
def data(model_dir):
    return rollout_data(model_dir)


def _train_once(model_dir, data, fsdp=FSDPConfig(), model_cfg=ModelConfig(), probe=None):
    """One GRPO update on a 1-rank FSDP2 worker; returns (metrics, full weights, probe records)."""
    batch, adv, old, ref = data
    cfg = ActorConfig(ppo_mini_batch_size=8, ppo_micro_batch_size_per_worker=4, kl_loss_coef=0.01, fsdp=fsdp,
                      optim=OptimConfig(lr=1e-3))
    worker = PolicyWorker(str(model_dir), model_cfg, cfg, role="actor", hooks=TEXT_HOOKS)
    records: list = []
    handle = probe(worker, records) if probe else None
    try:
        metrics = worker.update_policy(batch, adv, old, ref)
        weights = {n: t for b in worker.state_dict_buckets(64, checkpoint_names=False) for n, t in b}
        devices = {p.device.type for p in worker.model.parameters()}
    finally:
        if handle is not None:
            handle.remove()
        worker.close()
    return metrics, weights, records, devices


class _ForwardCounter:
    """Counts calls of a decoder layer's ``forward`` (a checkpointed layer is re-run in backward;
    module forward hooks do not fire on that re-run, the method does)."""

    def __init__(self, layer, records):
        self.layer, self.original = layer, layer.forward

        def counted(*args, **kwargs):
            records.append(1)
            return self.original(*args, **kwargs)

        layer.forward = counted

    def remove(self):
        del self.layer.forward


def _count_layer_forwards(worker, records):
    return _ForwardCounter(worker.hf_model.model.layers[0], records)


def _record_linear_dtypes(worker, records):
    proj = worker.hf_model.model.layers[0].mlp.down_proj
    return proj.register_forward_hook(lambda m, a, o: records.append((a[0].dtype, o.dtype)))


@pytest.fixture(scope="module")
def baseline(model_dir, data):
    return _train_once(model_dir, data, probe=_count_layer_forwards)


def test_gradient_checkpointing_recomputes_layers_and_gives_the_same_update(model_dir, data, baseline):
    metrics, weights, forwards, _ = _train_once(model_dir, data, model_cfg=ModelConfig(gradient_checkpointing=True),
                                               probe=_count_layer_forwards)
    base_metrics, base_weights, base_forwards, _ = baseline
    assert len(forwards) == 2 * len(base_forwards)  # every checkpointed layer runs again in backward
    assert metrics["actor/grad_norm"] == pytest.approx(base_metrics["actor/grad_norm"], rel=1e-5)
    for name, tensor in base_weights.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-5, atol=1e-7)


def test_bf16_mixed_precision_computes_in_bf16_and_keeps_fp32_weights(model_dir, data, baseline):
    fsdp = FSDPConfig(param_dtype="bfloat16", reduce_dtype="float32")
    metrics, weights, dtypes, _ = _train_once(model_dir, data, fsdp=fsdp, probe=_record_linear_dtypes)
    base_metrics, base_weights, _, _ = baseline
    assert dtypes and all(d == (torch.bfloat16, torch.bfloat16) for d in dtypes)
    assert all(t.dtype == torch.float32 for t in weights.values())  # fp32 master weights
    # the same update up to bf16 rounding, but not bit-identical (the compute really was bf16)
    assert metrics["actor/grad_norm"] == pytest.approx(base_metrics["actor/grad_norm"], rel=0.05)
    diffs = [float((weights[n] - t).abs().max()) for n, t in base_weights.items()]
    assert max(diffs) > 0 and max(diffs) < 5e-3


def test_cpu_offload_gives_the_same_update(model_dir, data, baseline):
    metrics, weights, _, devices = _train_once(model_dir, data, fsdp=FSDPConfig(cpu_offload=True))
    base_metrics, base_weights, _, _ = baseline
    assert devices == {"cpu"}
    assert metrics["actor/grad_norm"] == pytest.approx(base_metrics["actor/grad_norm"], rel=1e-6)
    for name, tensor in base_weights.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-6, atol=1e-8)


@pytest.mark.skipif(HAS_FLASH_ATTN, reason="flash-attn is installed here")
def test_flash_attention_2_without_flash_attn_names_the_fix(tmp_path):
    with pytest.raises(ImportError, match=r"flash-attn package.*docs/gpu.md.*sdpa"):
        check_attn_implementation("flash_attention_2", "bfloat16")
    with pytest.raises(ImportError, match="flash-attn"):  # before any loading work
        load_policy(tmp_path / "no_model_here", dtype="bfloat16", attn_implementation="flash_attention_2")
    check_attn_implementation("sdpa", "float32")
    check_attn_implementation("eager", "float32")
    with pytest.raises(ValueError, match="expected one of"):
        check_attn_implementation("flash_attention_3", "bfloat16")


@pytest.mark.skipif(not HAS_FLASH_ATTN or torch.cuda.is_available(), reason="needs flash-attn without a GPU")
def test_flash_attention_2_without_gpu_is_refused():
    with pytest.raises(RuntimeError, match="CUDA"):
        check_attn_implementation("flash_attention_2", "bfloat16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_vllm_engine_without_gpu_is_refused(tmp_path):
    from rl.rollout.vllm import VLLMRolloutBackend

    with pytest.raises(RuntimeError, match="no CUDA device"):
        VLLMRolloutBackend(tmp_path, RolloutConfig(backend="vllm"), device="cuda")
