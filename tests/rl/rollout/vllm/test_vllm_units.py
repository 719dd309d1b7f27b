"""Pure helpers of the vLLM backend (no engine): engine and sampling arguments, seeds, weight
buckets, the Ray runtime env of a rollout actor in the vLLM environment. Run in any environment."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

from rl.config import RolloutConfig
from rl.rollout import build_rollout_backend
from rl.rollout.base import SamplingParams
from rl.rollout.vllm import VLLMUnavailableError, engine_kwargs, request_seeds, sampling_kwargs
from rl.rollout.vllm_env import CPU_ENV_DEFAULTS, configure_cpu_env, rollout_runtime_env
from rl.rollout.vllm_worker_ext import WORKER_EXTENSION, discard_payload, pack_bucket, unpack_bucket

from .conftest import HAS_VLLM


def test_engine_kwargs_cpu():
    cfg = RolloutConfig(backend="vllm", max_prompt_length=300, max_response_length=50, temperature=1.0)
    kw = engine_kwargs("/m", cfg, device="cpu", dtype="float32", seed=3, max_images_per_prompt=4,
                       overrides={"max_num_seqs": 7})
    assert kw["model"] == kw["tokenizer"] == "/m"
    assert kw["max_model_len"] == 350 and kw["seed"] == 3 and kw["dtype"] == "float32"
    assert kw["distributed_executor_backend"] == "uni" and kw["enforce_eager"] is True
    assert kw["limit_mm_per_prompt"] == {"image": 4, "video": 0}
    assert kw["logprobs_mode"] == "raw_logprobs" and kw["enable_prefix_caching"] is True
    assert kw["generation_config"] == "vllm" and kw["max_num_seqs"] == 7
    assert "enable_sleep_mode" not in kw and "gpu_memory_utilization" not in kw
    assert kw["enable_chunked_prefill"] is False and kw["max_num_batched_tokens"] == 8192
    module, _, cls = kw["worker_extension_cls"].rpartition(".")
    assert kw["worker_extension_cls"] == WORKER_EXTENSION
    assert hasattr(importlib.import_module(module), cls)


def test_engine_kwargs_gpu():
    cfg = RolloutConfig(backend="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.5, enable_sleep=True,
                        temperature=0.7)
    kw = engine_kwargs("/m", cfg, device="cuda", dtype="bfloat16")
    assert kw["tensor_parallel_size"] == 2 and kw["distributed_executor_backend"] == "mp"
    assert kw["gpu_memory_utilization"] == 0.5 and kw["enable_sleep_mode"] is True
    assert kw["logprobs_mode"] == "processed_logprobs" and "enforce_eager" not in kw
    assert "enable_chunked_prefill" not in kw
    one = engine_kwargs("/m", RolloutConfig(backend="vllm", enable_sleep=False), device="cuda")
    assert one["distributed_executor_backend"] == "uni" and one["enable_sleep_mode"] is False


@pytest.mark.parametrize("kwargs, match", [
    (dict(device="cpu", cfg=RolloutConfig(tensor_parallel_size=2)), "needs GPUs"),
    (dict(device="cpu", cfg=RolloutConfig(), dtype="int8"), "dtype"),
    (dict(device="cuda", cfg=RolloutConfig(gpu_memory_utilization=1.5)), "gpu_memory_utilization"),
    (dict(device="tpu", cfg=RolloutConfig()), "'cpu' or 'cuda'"),
])
def test_engine_kwargs_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        engine_kwargs("/m", **kwargs)


def test_sampling_kwargs_sampled_and_greedy():
    params = SamplingParams(n=8, temperature=0.9, top_p=0.8, top_k=20, max_tokens=33, stop=["</answer>", "\n\n"],
                            seed=None)
    kw = sampling_kwargs(params, seed=12, stop_token_ids=[5, 6], allowed_token_ids=range(4))
    assert (kw["n"], kw["temperature"], kw["top_p"], kw["top_k"], kw["max_tokens"]) == (8, 0.9, 0.8, 20, 33)
    assert kw["stop"] == ["</answer>", "\n\n"] and kw["include_stop_str_in_output"] is True
    assert kw["stop_token_ids"] == [5, 6] and kw["seed"] == 12 and kw["logprobs"] == 0
    assert kw["allowed_token_ids"] == [0, 1, 2, 3] and kw["repetition_penalty"] == 1.0
    greedy = sampling_kwargs(SamplingParams(n=4, temperature=0.0, top_p=0.5, logprobs=False), None, [5], None)
    assert greedy["n"] == 1 and greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and greedy["top_k"] == -1
    assert greedy["logprobs"] is None and greedy["seed"] is None and "allowed_token_ids" not in greedy


def test_request_seeds_never_repeat_within_a_call():
    n, prompts = 8, 64
    for base in (0, 1, 12345, 2**40):
        seeds = request_seeds(base, prompts, n)
        per_sample = [s + k for s in seeds for k in range(n)]
        assert len(set(per_sample)) == prompts * n
        assert all(0 <= s < 2**31 for s in per_sample)
    a = {s + k for s in request_seeds(7, prompts, n) for k in range(n)}
    b = {s + k for s in request_seeds(8, prompts, n) for k in range(n)}
    assert not a & b  # consecutive calls draw from different streams


def test_pack_bucket_roundtrip_bytes_and_file(tmp_path):
    emb = torch.randn(10, 4)
    bucket = [
        ("model.embed_tokens.weight", emb),
        ("lm_head.weight", emb),  # tied: same storage as the embedding
        ("model.norm.weight", torch.randn(4, dtype=torch.bfloat16)),
        ("step", torch.tensor([3], dtype=torch.int64)),
        ("view", torch.arange(12.0).reshape(3, 4).t()),  # non-contiguous
    ]
    for transport in ("bytes", "file"):
        payload = pack_bucket(bucket, transport=transport, tmp_dir=tmp_path)
        assert payload["count"] == 5 and payload["transport"] == transport
        got = dict(unpack_bucket(payload))
        assert list(got) == [name for name, _ in bucket]
        for name, tensor in bucket:
            assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor)
        discard_payload(payload)
    assert not list(tmp_path.iterdir())  # the receiver's discard removed the file


def test_pack_bucket_errors(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        pack_bucket([("a", torch.zeros(1)), ("a", torch.zeros(1))])
    with pytest.raises(ValueError, match="transport"):
        pack_bucket([("a", torch.zeros(1))], transport="shm")
    payload = pack_bucket([("a", torch.zeros(1))])
    with pytest.raises(ValueError, match="expected 2"):
        unpack_bucket(dict(payload, count=2))


def test_rollout_runtime_env(tmp_path):
    with pytest.raises(FileNotFoundError, match="make setup-vllm"):
        rollout_runtime_env(str(tmp_path / "missing" / "python"))
    env = rollout_runtime_env(sys.executable)
    assert env["py_executable"] == str(Path(sys.executable).absolute())
    assert env["env_vars"] == CPU_ENV_DEFAULTS


def test_configure_cpu_env_keeps_values_already_set(monkeypatch):
    for key in CPU_ENV_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    got = configure_cpu_env({"VLLM_CPU_OMP_THREADS_BIND": "0"})
    assert got["VLLM_CPU_KVCACHE_SPACE"] == "3" and os.environ["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert got["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    assert got["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and got["TORCH_COMPILE_DISABLE"] == "1"


@pytest.mark.skipif(HAS_VLLM, reason="this environment has vLLM")
def test_vllm_backend_without_vllm_names_the_install_commands(tmp_path):
    with pytest.raises(VLLMUnavailableError, match="make setup-vllm") as info:
        build_rollout_backend(RolloutConfig(backend="vllm"), tmp_path)
    assert isinstance(info.value, ImportError) and "docs/gpu.md" in str(info.value)
