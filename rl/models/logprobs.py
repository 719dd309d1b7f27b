"""Teacher-forced log-probs (and entropy) of response tokens under the policy.

Used by the actor (differentiable, for the PPO/GRPO loss), the reference model and SFT.
Only the logits of response positions are materialised: the model's ``logits_to_keep``
is given the column indices ``P-1 .. P+R-2`` (the positions that predict the response
tokens), so a 152k vocabulary costs ``B x R x V`` instead of ``B x L x V``. The batch is
first trimmed to the columns any row uses; outputs are padded back to ``(B, R)``.
The model is always called through its own ``forward`` (so FSDP / PEFT wrappers work).

:func:`packed_policy_logprobs` gives the same values from one padding-free row (the rows'
valid tokens concatenated, position ids restarting per sequence): with flash-attention 2 the
model runs varlen attention over the sequence boundaries; with sdpa / eager transformers builds
a block-diagonal causal mask (correct, but no cheaper than padding: the CPU fallback is
token-budget micro-batches of :func:`policy_logprobs`, see ``rl.workers.batching``).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from rl.models.encoded_batch import EncodedBatch
from rl.models.mrope import MRopeIndexer

__all__ = ["policy_logprobs", "packed_policy_logprobs", "response_logits", "token_logprobs_from_logits", "sft_loss", "masked_mean"]


def _underlying_config(model):
    config = getattr(model, "config", None)
    if config is None and hasattr(model, "module"):
        config = model.module.config
    return config


def _check_rope(model, batch: EncodedBatch) -> None:
    config = _underlying_config(model)
    if config is None or not hasattr(config, "vision_config"):
        return
    expected = MRopeIndexer.from_model_config(config).params
    if tuple(batch.rope_params) != tuple(expected):
        raise ValueError(
            f"EncodedBatch position ids were computed with (spatial_merge_size, tokens_per_second)="
            f"{tuple(batch.rope_params)} but the model uses {expected}; build the batch with "
            "rope=MRopeIndexer.from_model_config(model.config)"
        )


def response_logits(model, batch: EncodedBatch) -> torch.Tensor:
    """Raw logits that predict each response token: ``(B, R, V)`` (model dtype).

    ``batch`` must already be on the model's device. Row ``i``, column ``j`` holds the
    logits at sequence column ``P + j - 1``.
    """
    p, r = batch.prompt_width, batch.response_width
    if p < 1:
        raise ValueError("EncodedBatch has no prompt columns; a response token needs a preceding token")
    keep = torch.arange(p - 1, p - 1 + r, device=batch.input_ids.device)
    out = model(**batch.model_inputs(), use_cache=False, logits_to_keep=keep)
    return out.logits


def _logprobs_chunk(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, with_entropy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits ``(N, V)``, tokens ``(N,)`` -> float32 log-probs ``(N,)`` and entropy ``(N,)`` (zeros if off)."""
    scaled = logits.float() / temperature
    lse = torch.logsumexp(scaled, dim=-1)
    logp = scaled.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - lse
    if not with_entropy:
        return logp, torch.zeros_like(logp)
    probs = torch.softmax(scaled, dim=-1)
    return logp, lse - (probs * scaled).sum(-1)


def token_logprobs_from_logits(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_tokens: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log_softmax(logits / temperature)`` at ``tokens`` and optionally the entropy.

    logits: ``(..., V)``; tokens: ``(...)`` long. Returns float32 tensors of ``tokens.shape``.
    Works through ``chunk_tokens`` positions at a time; with autograd on, each chunk is
    checkpointed, so the float32 copies of a ``(chunk, V)`` block never pile up (a 152k
    vocabulary makes them large).
    """
    vocab = logits.shape[-1]
    flat_logits = logits.reshape(-1, vocab)
    flat_tokens = tokens.reshape(-1)
    grad = torch.is_grad_enabled() and flat_logits.requires_grad
    lps, ents = [], []
    for start in range(0, flat_tokens.shape[0], chunk_tokens):
        sl = slice(start, start + chunk_tokens)
        if grad:
            lp, ent = checkpoint(_logprobs_chunk, flat_logits[sl], flat_tokens[sl], temperature, with_entropy,
                                 use_reentrant=False)
        else:
            lp, ent = _logprobs_chunk(flat_logits[sl], flat_tokens[sl], temperature, with_entropy)
        lps.append(lp)
        ents.append(ent)
    if not lps:
        empty = flat_logits.new_zeros(tokens.shape, dtype=torch.float32)
        return empty, (empty.clone() if with_entropy else None)
    logp = torch.cat(lps).reshape(tokens.shape)
    return logp, (torch.cat(ents).reshape(tokens.shape) if with_entropy else None)


def policy_logprobs(
    model, batch: EncodedBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``(B, R)`` of ``batch.responses`` under ``model`` (logits / ``temperature``),
    and the entropy ``(B, R)`` of the full next-token distribution when ``with_entropy``.

    Differentiable when called with grad enabled. Values at masked response positions
    (``response_mask == 0``) are 0. float32 outputs on the model's device (the batch is moved there).
    """
    if temperature <= 0:
        raise ValueError(f"policy_logprobs temperature must be > 0, got {temperature}")
    _check_rope(model, batch)
    device = next(model.parameters()).device
    if batch.device != device:
        batch = batch.to(device)
    b, r = len(batch), batch.response_width
    trimmed = batch.trimmed()
    logp_full = torch.zeros((b, r), dtype=torch.float32, device=batch.device)
    ent_full = torch.zeros((b, r), dtype=torch.float32, device=batch.device) if with_entropy else None
    if trimmed.response_width == 0:
        return logp_full, ent_full
    logits = response_logits(model, trimmed)
    logp, ent = token_logprobs_from_logits(logits, trimmed.responses, temperature, with_entropy)
    mask = trimmed.response_mask.bool()
    rt = trimmed.response_width
    logp = torch.where(mask, logp, torch.zeros_like(logp))
    logp_full = torch.cat([logp, logp_full[:, rt:]], dim=1) if rt < r else logp
    if with_entropy:
        ent = torch.where(mask, ent, torch.zeros_like(ent))
        ent_full = torch.cat([ent, ent_full[:, rt:]], dim=1) if rt < r else ent
    return logp_full, ent_full


def packed_policy_logprobs(
    model, batch: EncodedBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`policy_logprobs` computed on ``batch.packed()``: the same ``(B, R)`` outputs (0 at
    masked positions), from one ``(1, T)`` forward, ``T`` = the batch's valid tokens.

    Needs an attention implementation that reads packed ``position_ids`` without an attention
    mask (transformers' flash_attention_2 / sdpa / eager for Qwen2.5-VL). Differentiable.
    """
    if temperature <= 0:
        raise ValueError(f"packed_policy_logprobs temperature must be > 0, got {temperature}")
    _check_rope(model, batch)
    device = next(model.parameters()).device
    if batch.device != device:
        batch = batch.to(device)
    b, r = len(batch), batch.response_width
    packed = batch.packed()
    logp_full = torch.zeros((b, r), dtype=torch.float32, device=batch.device)
    ent_full = torch.zeros((b, r), dtype=torch.float32, device=batch.device) if with_entropy else None
    if packed.targets.numel() == 0:
        return logp_full, ent_full
    out = model(**packed.model_inputs(), use_cache=False, logits_to_keep=packed.logit_index)
    logp, ent = token_logprobs_from_logits(out.logits[0], packed.targets, temperature, with_entropy)  # (K,)
    where = (packed.target_rows, packed.target_cols)
    logp_full = logp_full.index_put(where, logp)
    if with_entropy:
        ent_full = ent_full.index_put(where, ent)
    return logp_full, ent_full


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask == 1`` (0 when the mask is empty)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def sft_loss(model, batch: EncodedBatch) -> torch.Tensor:
    """Token-mean negative log-likelihood of the responses (``-mean logp`` over ``response_mask``)."""
    logp, _ = policy_logprobs(model, batch)
    return -masked_mean(logp, batch.response_mask)

