"""Independent references the rollout-backend tests (transformers and vLLM) compare against."""

from __future__ import annotations

import torch


def teacher_forced(model, processor, prompts, out, temperature: float = 1.0):
    """Encode ``out``'s responses after their prompts (``out.n`` per prompt) and return the
    training batch and the policy's teacher-forced log-probs ``(num_responses, response_width)``."""
    from rl.models.inputs import encode_for_training
    from rl.models.logprobs import policy_logprobs

    batch = encode_for_training(processor, [p for p in prompts for _ in range(out.n)], out.token_ids)
    with torch.no_grad():
        lp, _ = policy_logprobs(model, batch, temperature=temperature)
    return batch, lp


def samplable_token_ids(processor) -> set[int]:
    """Token ids a rollout may emit: the regular tokens and ``<|im_end|>`` (specials are the last ids)."""
    tok = processor.tokenizer
    first_special = min(tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens)
    return set(range(first_special)) | {tok.eos_token_id}
