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


def check_seeded_generation(backend, prompts, n: int) -> None:
    """The seed contract of :meth:`RolloutBackend.generate`: the same explicit seed repeats the
    tokens and log-probs, another seed does not, and calls without a seed use a running seed
    (two such calls differ)."""
    from rl.rollout.base import SamplingParams

    params = dict(n=n, temperature=1.0, max_tokens=6)
    a = backend.generate(prompts, SamplingParams(seed=5, **params))
    b = backend.generate(prompts, SamplingParams(seed=5, **params))
    c = backend.generate(prompts, SamplingParams(seed=6, **params))
    assert a.token_ids == b.token_ids and a.logprobs == b.logprobs
    assert a.token_ids != c.token_ids
    d, e = (backend.generate(prompts, SamplingParams(**params)) for _ in range(2))
    assert d.token_ids != e.token_ids
