"""The ``rollout`` config section: sampling parameters, engine and weight sync.

Imports nothing heavy (the backends import torch / vLLM). ``Literal`` fields list their
choices and ``Annotated[T, "<bound>"]`` states a range (checked at start-up; see
:mod:`rl.schema`); the bounds are those :class:`rl.rollout.base.SamplingParams` enforces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Iterator, Literal

#: Rollout engines (:func:`rl.rollout.build_rollout_backend`).
ROLLOUT_BACKENDS = ("hf", "vllm")


@dataclass
class RolloutConfig:
    """Rollout generation (sampling parameters, engine, weight sync)."""

    # hf (transformers generate; CPU) | vllm
    backend: Literal[ROLLOUT_BACKENDS] = "hf"
    # Responses sampled per prompt (the GRPO group size).
    n: Annotated[int, ">= 1"] = 8
    # Sampling temperature of training rollouts.
    temperature: Annotated[float, ">= 0"] = 1.0
    # Nucleus sampling threshold (1.0 = off).
    top_p: Annotated[float, "> 0, <= 1"] = 1.0
    # Top-k sampling (-1 = off).
    top_k: Annotated[int, "== -1 or >= 1"] = -1
    # Longest prompt in tokens (image tokens included).
    max_prompt_length: Annotated[int, ">= 1"] = 3000
    # Longest response in tokens; longer ones are cut (finish_reason=length).
    max_response_length: Annotated[int, ">= 1"] = 2000
    # Strings that end a response (kept in it).
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    # Prompts per generate call of the hf backend.
    micro_batch_size: Annotated[int, ">= 1"] = 64
    # vLLM only.
    tensor_parallel_size: Annotated[int, ">= 1"] = 1
    # vLLM: fraction of GPU memory the engine may use.
    gpu_memory_utilization: Annotated[float, "> 0, <= 1"] = 0.6
    # vLLM: free the KV cache (sleep) while the actor trains on shared GPUs.
    enable_sleep: bool = True
    # vLLM: interpreter of the rollout actors ("" = the trainer's; "auto" = .venv-vllm/bin/python of `make setup-vllm`).
    vllm_python: str = ""
    # Weight sync actor -> rollout, bucket size in MB.
    weight_sync_bucket_mb: Annotated[int, ">= 1"] = 256
    # Sampling for validation rollouts.
    val_temperature: Annotated[float, ">= 0"] = 0.0
    # Responses per prompt in validation.
    val_n: Annotated[int, ">= 1"] = 1

    def validate(self) -> Iterator[tuple[str, str]]:
        if any(not s for s in self.stop):
            yield "stop", f"must not contain an empty string, got {self.stop}"
