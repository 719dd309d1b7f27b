"""Policy models: tiny offline Qwen2.5-VL, loading, model inputs and teacher-forced log-probs.

The names below are imported on first use (PEP 562), so that importing the light
:mod:`rl.models.config` (the ``model`` config section) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "EncodedBatch": "encoded_batch",
    "PromptEncoding": "inputs",
    "build_messages": "inputs",
    "encode_for_sft": "inputs",
    "encode_for_training": "inputs",
    "encode_prompts": "inputs",
    "CheckpointError": "loading",
    "ensure_policy": "loading",
    "load_policy": "loading",
    "load_processor": "loading",
    "policy_logprobs": "logprobs",
    "sft_loss": "logprobs",
    "MRopeIndexer": "mrope",
    "build_tiny_qwen25vl": "tiny",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "EncodedBatch",
    "PromptEncoding",
    "MRopeIndexer",
    "CheckpointError",
    "build_messages",
    "encode_prompts",
    "encode_for_training",
    "encode_for_sft",
    "policy_logprobs",
    "sft_loss",
    "load_policy",
    "load_processor",
    "ensure_policy",
    "build_tiny_qwen25vl",
]
