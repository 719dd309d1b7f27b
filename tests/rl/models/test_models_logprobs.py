"""policy_logprobs against an unbatched, unpadded hand loop."""

from __future__ import annotations

import torch

from rl.models.inputs import build_messages, encode_for_sft, encode_for_training
from rl.models.loading import load_policy
from rl.models.logprobs import policy_logprobs, sft_loss, token_logprobs_from_logits

from .conftest import sharpen_


def _hand_logits(model, processor, sample, response):
    """One sample, no padding, positions computed by the model: logits predicting each response token."""
    text = processor.apply_chat_template(build_messages(sample), tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=sample.get("images") or None, return_tensors="pt")
    p = enc["input_ids"].shape[1]
    ids = torch.cat([enc["input_ids"], torch.tensor([response])], dim=1)
    mm = torch.cat([enc["mm_token_type_ids"], torch.zeros((1, len(response)), dtype=torch.long)], dim=1)
    kw = {k: enc[k] for k in ("pixel_values", "image_grid_thw") if k in enc}
    with torch.no_grad():
        logits = model(input_ids=ids, mm_token_type_ids=mm, **kw).logits[0].double()
    return logits[p - 1:p - 1 + len(response)]


def _hand_logprobs(logits, response, temperature):
    lps, ents = [], []
    for j, tok in enumerate(response):
        logp = torch.log_softmax(logits[j] / temperature, dim=-1)
        lps.append(float(logp[tok]))
        ents.append(float(-(logp.exp() * logp).sum()))
    return lps, ents


def test_matches_hand_loop_and_is_padding_invariant(sharp_model, processor, samples):
    eos = processor.tokenizer.eos_token_id
    responses = [[5, 6, 7, eos], [8, 9], [10, 11, 12, 13, 14, 15, 16]]
    batch = encode_for_training(processor, samples, responses)
    hand_logits = [_hand_logits(sharp_model, processor, s, r) for s, r in zip(samples, responses)]
    for temperature in (1.0, 0.7):
        with torch.no_grad():
            lp, ent = policy_logprobs(sharp_model, batch, temperature=temperature, with_entropy=True)
        assert lp.shape == ent.shape == (3, 7)
        for i, (s, r) in enumerate(zip(samples, responses)):
            hand_lp, hand_ent = _hand_logprobs(hand_logits[i], r, temperature)
            assert torch.allclose(lp[i, :len(r)].double(), torch.tensor(hand_lp, dtype=torch.double), atol=1e-5)
            assert torch.allclose(ent[i, :len(r)].double(), torch.tensor(hand_ent, dtype=torch.double), atol=1e-5)
            assert (lp[i, len(r):] == 0).all() and (ent[i, len(r):] == 0).all()
    # extra padding on both sides and a reordered subset change nothing
    with torch.no_grad():
        base, _ = policy_logprobs(sharp_model, batch)
        wide, _ = policy_logprobs(sharp_model, batch.padded_to(batch.prompt_width + 5, batch.response_width + 3))
        sub, _ = policy_logprobs(sharp_model, batch.select([2, 0]))
    assert torch.allclose(wide[:, :7], base, atol=1e-5) and (wide[:, 7:] == 0).all()
    assert torch.allclose(sub, base[[2, 0]], atol=1e-5)
    # the distribution is far from uniform, so these comparisons are meaningful
    assert base[batch.response_mask.bool()].std() > 0.5


def test_differentiable_and_sft_loss(tiny_dir, processor, samples):
    model = sharpen_(load_policy(tiny_dir), seed=2).train()
    targets = ["<think>a</think><answer>A</answer>", "<think>b</think><answer>B</answer>", "hi"]
    batch = encode_for_sft(processor, samples, targets)
    loss = sft_loss(model, batch)
    with torch.no_grad():
        lp, _ = policy_logprobs(model, batch)
    mask = batch.response_mask.bool()
    assert torch.allclose(loss, -lp[mask].mean(), atol=1e-6)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["model.language_model.embed_tokens.weight"].abs().sum() > 0
    assert grads["model.visual.blocks.0.attn.qkv.weight"].abs().sum() > 0  # through the images
    # one SGD step on the SFT loss lowers it
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
        assert sft_loss(model, batch) < loss


def test_chunked_logprobs_match_direct_computation():
    """Chunking (and checkpointing under autograd) changes neither values nor gradients."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 7, 50, generator=gen) * 3).requires_grad_(True)
    tokens = torch.randint(0, 50, (3, 7), generator=gen)
    ref_logp = torch.log_softmax(logits / 0.7, -1).gather(-1, tokens[..., None])[..., 0]
    ref_ent = -(torch.softmax(logits / 0.7, -1) * torch.log_softmax(logits / 0.7, -1)).sum(-1)
    (ref_grad,) = torch.autograd.grad((ref_logp * 2 + ref_ent).sum(), logits)
    logp, ent = token_logprobs_from_logits(logits, tokens, 0.7, with_entropy=True, chunk_tokens=4)
    (grad,) = torch.autograd.grad((logp * 2 + ent).sum(), logits)
    assert torch.allclose(logp, ref_logp, atol=1e-5) and torch.allclose(ent, ref_ent, atol=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-5)
    with torch.no_grad():
        logp2, none = token_logprobs_from_logits(logits, tokens, 0.7, chunk_tokens=5)
    assert none is None and torch.allclose(logp2, ref_logp, atol=1e-5)
