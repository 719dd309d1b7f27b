"""Rollout interface pieces that need no model: sampling params, outputs, stop-string truncation."""

from __future__ import annotations

import pickle

import pytest

from rl.config import RolloutConfig
from rl.rollout import build_rollout_backend
from rl.rollout.base import GeneratedResponse, RolloutOutput, SamplingParams
from rl.rollout.stopping import StopStringMatcher, byte_level_decoder_map, truncate_response

# A toy vocabulary: id -> bytes. "</answer>" can be assembled from several pieces.
VOCAB = [b"<", b"/", b"answer", b">", b"ans", b"wer", b">.", b"x", b"</", b"EOS", b"a", b"nswer>!"]
EOS = 9


def test_sampling_params_from_config_and_validation():
    cfg = RolloutConfig(n=8, temperature=0.9, top_p=0.95, top_k=-1, max_response_length=64,
                        stop=["</answer>"], val_temperature=0.0, val_n=1)
    train = SamplingParams.from_config(cfg, seed=3)
    assert (train.n, train.temperature, train.top_p, train.top_k, train.max_tokens, train.stop, train.seed) == (
        8, 0.9, 0.95, -1, 64, ["</answer>"], 3)
    val = SamplingParams.from_config(cfg, validation=True)
    assert (val.n, val.temperature, val.greedy) == (1, 0.0, True)
    for bad in [dict(n=0), dict(temperature=-1), dict(top_p=0.0), dict(top_k=0), dict(max_tokens=0), dict(stop=[""])]:
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_rollout_output_is_picklable_and_grouped():
    responses = [GeneratedResponse(i // 2, [1, 2, i], [-0.1, -0.2, -0.3], f"t{i}", "stop") for i in range(4)]
    out = RolloutOutput(prompt_token_ids=[[7, 8], [9]], responses=responses, n=2)
    again = pickle.loads(pickle.dumps(out))
    assert again == out
    assert out.group_ids == [0, 0, 1, 1] and out.num_prompts == 2 and len(out) == 4
    pad = out.padded_logprobs(width=4)
    assert pad.shape == (4, 4) and pad[0].tolist() == pytest.approx([-0.1, -0.2, -0.3, 0.0])
    joined = RolloutOutput.concat([out, out])
    assert joined.group_ids == [0, 0, 1, 1, 2, 2, 3, 3] and joined.num_prompts == 4
    with pytest.raises(ValueError):
        RolloutOutput(prompt_token_ids=[[1]], responses=responses, n=2)
    with pytest.raises(ValueError, match="finish_reason"):
        GeneratedResponse(0, [1], None, "", "eos")
    with pytest.raises(ValueError, match="logprobs"):
        GeneratedResponse(0, [1, 2], [0.0], "", "stop")


def _first_stop_by_hand(ids, stop: bytes):
    """Smallest prefix whose bytes contain ``stop`` (independent of the matcher)."""
    for k in range(1, len(ids) + 1):
        if stop in b"".join(VOCAB[i] for i in ids[:k]):
            return k - 1
    return None


@pytest.mark.parametrize("ids, expected_len, reason, by_string", [
    ([7, 0, 1, 2, 3, 7, 7], 5, "stop", True),       # "<" "/" "answer" ">" over four tokens
    ([7, 8, 4, 5, 6, 7], 5, "stop", True),          # completed mid-token by ">." (token kept whole)
    ([8, 10, 11, 7], 3, "stop", True),              # "</" "a" "nswer>!"
    ([7, EOS, 8, 2, 3], 2, "stop", False),          # eos first: cut after the eos
    ([8, 2, 7, 3], 4, "length", False),             # "</answerx>" is not the stop string
    ([7, 7, 7], 3, "length", False),
])
def test_truncation_on_crafted_sequences(ids, expected_len, reason, by_string):
    matcher = StopStringMatcher(VOCAB, ["</answer>"])
    cut = truncate_response(ids, [EOS], matcher)
    assert (len(cut.token_ids), cut.finish_reason, cut.stopped_by_string) == (expected_len, reason, by_string)
    assert cut.token_ids == ids[:expected_len]
    hand = _first_stop_by_hand(ids, b"</answer>")
    if by_string:
        assert hand == expected_len - 1


def test_multiple_stop_strings_and_no_stop_strings():
    matcher = StopStringMatcher(VOCAB, ["xx", "</answer>"])
    assert truncate_response([7, 7, 0], [EOS], matcher).token_ids == [7, 7]
    assert not StopStringMatcher(VOCAB, [])
    assert truncate_response([0, 1, 2, 3], [EOS], None).finish_reason == "length"


def test_byte_level_map_is_a_bijection():
    m = byte_level_decoder_map()
    assert len(m) == 256 and sorted(m.values()) == list(range(256))
    assert m["A"] == ord("A") and m["Ġ"] == ord(" ") and m["Ċ"] == ord("\n")


def test_unknown_rollout_backend_is_refused(tmp_path):
    # rollout.backend=vllm: tests/rl/rollout/vllm (the backend exists; without vLLM it names the install commands)
    with pytest.raises(ValueError, match="rollout.backend"):
        build_rollout_backend(RolloutConfig(backend="sglang"), tmp_path)
