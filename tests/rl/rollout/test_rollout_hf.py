"""transformers-generate rollout backend: sampling, log-prob consistency, stop strings, weight sync."""

from __future__ import annotations

import pytest
import torch

from rl.config import RolloutConfig
from rl.models.inputs import encode_for_training, encode_prompts
from rl.models.loading import load_policy, load_processor
from rl.models.logprobs import policy_logprobs, response_logits
from rl.rollout import build_rollout_backend
from rl.rollout.base import SamplingParams
from rl.rollout.hf import HFRolloutBackend, suppressed_token_ids

from tests.rollout_checks import check_seeded_generation, samplable_token_ids, teacher_forced

from .conftest import sharpen_

N = 8
MAX_TOKENS = 20
TEMPERATURE = 0.8


@pytest.fixture(scope="module")
def backend(tiny_dir):
    be = HFRolloutBackend.from_pretrained(tiny_dir, micro_batch_size=2, seed=0)
    sharpen_(be.model, seed=1)
    return be


@pytest.fixture(scope="module")
def image_prompts(samples):
    return samples[:2]  # one image / two images + system prompt: different prompt lengths


@pytest.fixture(scope="module")
def rollout(backend, image_prompts):
    # temperature and top-p != 1: the returned log-probs must be log_softmax(raw / T), unfiltered
    params = SamplingParams(n=N, temperature=TEMPERATURE, top_p=0.9, max_tokens=MAX_TOKENS, stop=["</answer>"],
                            seed=11)
    return backend.generate(image_prompts, params)


def test_n_responses_per_image_prompt(backend, rollout, image_prompts, processor):
    out = rollout
    assert out.n == N and out.num_prompts == 2 and len(out) == 2 * N
    assert out.group_ids == [0] * N + [1] * N
    prompt_ids = [e.input_ids.tolist() for e in encode_prompts(processor, image_prompts)]
    assert out.prompt_token_ids == prompt_ids
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert [p.count(image_pad) for p in out.prompt_token_ids] == [16, 32]
    allowed = samplable_token_ids(processor)
    eos = processor.tokenizer.eos_token_id
    for r in out.responses:
        assert 1 <= len(r.token_ids) <= MAX_TOKENS
        assert set(r.token_ids) <= allowed  # no <|image_pad|> & co.
        assert eos not in r.token_ids[:-1]
        if r.finish_reason == "length":
            assert len(r.token_ids) == MAX_TOKENS and r.token_ids[-1] != eos and "</answer>" not in r.text
        else:
            assert r.token_ids[-1] == eos or r.text.endswith("</answer>")
        if "</answer>" not in r.text:
            assert r.text == processor.tokenizer.decode(r.token_ids, skip_special_tokens=True)
    for g in range(2):  # sampling, not copies
        assert len({tuple(r.token_ids) for r in out.responses[g * N:(g + 1) * N]}) > 1


def test_sampled_logprobs_equal_teacher_forcing(backend, rollout, image_prompts):
    batch, lp = teacher_forced(backend.model, backend.processor, image_prompts, rollout, TEMPERATURE)
    ref = rollout.padded_logprobs(batch.response_width)
    mask = batch.response_mask.bool()
    assert torch.equal(batch.response_lengths, torch.tensor([len(t) for t in rollout.token_ids]))
    assert (lp - ref)[mask].abs().max() < 1e-4
    assert ref[mask].std() > 0.3  # far from uniform: the comparison is meaningful


def test_seeded_generation(backend, image_prompts):
    check_seeded_generation(backend, image_prompts, n=2)


def test_greedy_and_top_k_1_follow_the_argmax(backend, image_prompts, processor):
    """Greedy tokens are the argmax of the teacher-forced logits over the allowed tokens; top_k=1
    sampling gives the same tokens, and its log-probs are the *raw* ones (before top-k filtering)."""
    greedy = backend.generate(image_prompts, SamplingParams(n=2, temperature=0.0, max_tokens=8))
    assert greedy.token_ids[0] == greedy.token_ids[1] and greedy.token_ids[2] == greedy.token_ids[3]
    batch = encode_for_training(processor, [p for p in image_prompts for _ in range(2)], greedy.token_ids)
    with torch.no_grad():
        logits = response_logits(backend.model, batch).float()
        tf_lp, _ = policy_logprobs(backend.model, batch, temperature=1.0)
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
    allowed[list(samplable_token_ids(processor))] = True
    argmax = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
    mask = batch.response_mask.bool()
    assert torch.equal(argmax[mask], batch.responses[mask])
    ref = greedy.padded_logprobs(batch.response_width)
    assert (tf_lp - ref)[mask].abs().max() < 1e-4

    top1 = backend.generate(image_prompts, SamplingParams(n=2, temperature=1.0, top_k=1, max_tokens=8, seed=1))
    assert top1.token_ids == greedy.token_ids
    assert top1.padded_logprobs(batch.response_width)[mask].max() < -1e-3  # not the filtered 0.0
    assert (top1.padded_logprobs(batch.response_width) - ref)[mask].abs().max() < 1e-4


def test_stop_string_truncates_the_same_samples(backend, image_prompts, processor):
    """With a fixed seed, generating with a stop string gives the no-stop responses cut right after
    the token where the stop string first appears (checked by decoding prefixes)."""
    tok = processor.tokenizer
    base = dict(n=4, temperature=1.0, max_tokens=16, seed=23)
    free = backend.generate(image_prompts, SamplingParams(**base))
    # a stop string spanning three tokens of response 0 and ending inside the third one
    ids = free.token_ids[0]
    pieces = [tok.decode([t]) for t in ids]
    k = next(i for i in range(len(ids) - 2)
             if all(p.isascii() and p for p in pieces[i:i + 3]) and len(pieces[i + 2]) >= 2)
    stop = pieces[k][-1:] + pieces[k + 1] + pieces[k + 2][:1]
    cut = backend.generate(image_prompts, SamplingParams(stop=[stop], **base))
    hits = 0
    for r_free, r_cut in zip(free.responses, cut.responses):
        prefix_end = next((j + 1 for j in range(len(r_free.token_ids))
                           if stop in tok.decode(r_free.token_ids[:j + 1])), None)
        if prefix_end is None:
            assert r_cut.token_ids == r_free.token_ids and r_cut.finish_reason == r_free.finish_reason
            continue
        hits += 1
        assert r_cut.token_ids == r_free.token_ids[:prefix_end]
        assert r_cut.finish_reason == "stop" and r_cut.text.endswith(stop)
        assert r_cut.logprobs == pytest.approx(r_free.logprobs[:prefix_end], abs=1e-6)
    assert hits >= 1


def test_update_weights_takes_another_models_weights(tiny_dir, image_prompts):
    processor = load_processor(tiny_dir)
    be = HFRolloutBackend(load_policy(tiny_dir), processor, micro_batch_size=2)
    other = sharpen_(load_policy(tiny_dir), seed=7)
    params = SamplingParams(n=2, temperature=1.0, max_tokens=10, seed=3)

    def chunks():  # a stream, as the actor sends it; the tied lm_head is not in named_parameters()
        for name, p in other.named_parameters():
            yield name, p.detach().clone()

    assert "lm_head.weight" not in dict(other.named_parameters())
    count = be.update_weights(chunks())
    be.reset_caches()
    assert count == len(list(other.named_parameters()))
    assert torch.equal(be.model.lm_head.weight, other.lm_head.weight)
    out = be.generate(image_prompts, params)
    batch, lp_other = teacher_forced(other, processor, image_prompts, out)
    ref = out.padded_logprobs(batch.response_width)
    mask = batch.response_mask.bool()
    assert (lp_other - ref)[mask].abs().max() < 1e-4
    original = load_policy(tiny_dir)
    with torch.no_grad():
        lp_orig, _ = policy_logprobs(original, batch)
    assert (lp_orig - ref)[mask].abs().max() > 0.1  # the weights really changed

    with pytest.raises(KeyError, match="not_a_param"):
        be.update_weights([("not_a_param", torch.zeros(1))])
    with pytest.raises(ValueError, match="shape mismatch"):
        be.update_weights([("lm_head.weight", torch.zeros(3, 3))])


def test_a_restored_seed_counter_continues_the_running_seeds(tiny_dir, image_prompts):
    """A resumed run's fresh backend, given the checkpointed counter, samples what the
    uninterrupted backend samples next (calls without an explicit seed use ``seed + calls``)."""
    params = SamplingParams(n=2, temperature=1.0, max_tokens=6)

    def fresh() -> HFRolloutBackend:
        be = HFRolloutBackend.from_pretrained(tiny_dir, micro_batch_size=2, seed=4)
        sharpen_(be.model, seed=1)
        return be

    uninterrupted = fresh()
    calls = [uninterrupted.generate(image_prompts, params).token_ids for _ in range(3)]
    assert uninterrupted.sampling_state() == {"calls": 3}
    resumed = fresh()
    resumed.load_sampling_state({"calls": 2})
    assert resumed.generate(image_prompts, params).token_ids == calls[2]
    assert fresh().generate(image_prompts, params).token_ids == calls[0] != calls[2]   # no restore: seeds reused


def test_build_rollout_backend_hf(tiny_dir):
    be = build_rollout_backend(RolloutConfig(backend="hf", micro_batch_size=3), tiny_dir)
    assert isinstance(be, HFRolloutBackend) and be.micro_batch_size == 3 and not be.supports_sleep
    out = be.generate([{"prompt": "hi"}], SamplingParams(n=2, max_tokens=4, seed=0))
    assert len(out) == 2 and all(r.logprobs is not None for r in out.responses)


def test_special_tokens_are_suppressed_even_when_preferred(tiny_dir, image_prompts, processor):
    """Bias the model's logits towards <|image_pad|>, <|video_pad|> and <|endoftext|>: the sampler
    must never emit them (nor ids beyond the tokenizer), but <|im_end|> stays allowed."""
    tok = processor.tokenizer
    be = HFRolloutBackend(load_policy(tiny_dir), processor, micro_batch_size=2)
    banned = [tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|endoftext|>")]

    def bias(module, args, output):
        output = output.clone()
        output[..., banned] += 50.0
        return output

    handle = be.model.lm_head.register_forward_hook(bias)
    try:
        out = be.generate(image_prompts, SamplingParams(n=2, temperature=1.0, max_tokens=4, seed=0))
        assert all(t not in banned for r in out.responses for t in r.token_ids)
        # the recorded log-probs are the raw ones: the biased specials take almost all the mass
        assert max(max(r.logprobs) for r in out.responses) < -40
        handle.remove()
        eos = tok.eos_token_id
        handle = be.model.lm_head.register_forward_hook(
            lambda m, a, o: o + 50.0 * torch.nn.functional.one_hot(torch.tensor(eos), o.shape[-1]))
        out = be.generate(image_prompts, SamplingParams(n=2, temperature=1.0, max_tokens=4, seed=0))
        assert all(r.token_ids == [eos] and r.finish_reason == "stop" for r in out.responses)
    finally:
        handle.remove()


def test_suppressed_token_ids_cover_specials_and_padded_vocab(processor):
    tok = processor.tokenizer
    eos = tok.eos_token_id
    ids = suppressed_token_ids(tok, vocab_size=len(tok) + 6, allowed=[eos])
    specials = {tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    assert set(ids) == (specials - {eos}) | set(range(len(tok), len(tok) + 6))


def test_generate_groups_streams_one_piece_per_micro_batch(backend, samples):
    """micro_batch_size=2 and 3 prompts: piece 0 (prompts 0-1) exists before prompt 2 is
    generated; each piece holds whole groups numbered from 0; the pieces joined are the
    result of ``generate`` with the same seed."""
    from rl.rollout.base import RolloutOutput

    params = SamplingParams(n=3, temperature=1.0, max_tokens=8, seed=21)
    calls = []
    inner = backend.model.generate
    backend.model.generate = lambda *a, **k: calls.append(1) or inner(*a, **k)
    try:
        stream = backend.generate_groups(samples, params)
        first, piece0 = next(stream)
        assert (first, piece0.num_prompts, len(calls)) == (0, 2, 1)  # lazily: prompt 2 not generated yet
        rest = list(stream)
    finally:
        del backend.model.generate
    assert [(i, p.num_prompts) for i, p in rest] == [(2, 1)] and len(calls) == 2
    assert piece0.group_ids == [0, 0, 0, 1, 1, 1] and rest[0][1].group_ids == [0, 0, 0]
    whole = backend.generate(samples, params)
    joined = RolloutOutput.concat([piece0, rest[0][1]])
    assert joined.token_ids == whole.token_ids and joined.logprobs == whole.logprobs
    assert joined.group_ids == whole.group_ids == [g for g in range(3) for _ in range(3)]
