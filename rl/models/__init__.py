"""Policy models: tiny offline Qwen2.5-VL, loading, model inputs and teacher-forced log-probs."""

from rl.models.encoded_batch import EncodedBatch
from rl.models.inputs import (
    PromptEncoding,
    build_messages,
    encode_for_sft,
    encode_for_training,
    encode_prompts,
)
from rl.models.loading import CheckpointError, ensure_policy, load_policy, load_processor
from rl.models.logprobs import policy_logprobs, sft_loss
from rl.models.mrope import MRopeIndexer
from rl.models.tiny import build_tiny_qwen25vl

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
