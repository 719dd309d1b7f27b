"""Tiny byte-level BPE tokenizer: determinism, Qwen special tokens, digits, chat template."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl.models.tokenizer import CHAT_TEMPLATE, SPECIAL_TOKENS, _trained_backend_json, train_tiny_tokenizer
from rl.rollout.stopping import token_bytes_table


@pytest.fixture(scope="module")
def tok():
    return train_tiny_tokenizer(vocab_size=1024)


@pytest.fixture(scope="module")
def table(tok):
    return token_bytes_table(tok)


def test_training_is_deterministic(tok):
    _trained_backend_json.cache_clear()  # really train again (results are cached per process)
    again = train_tiny_tokenizer(vocab_size=1024)
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_vocab_size_and_special_tokens(tok):
    assert 900 <= len(tok) <= 1024
    ids = [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    # Qwen layout: the special tokens follow the learned vocabulary, in Qwen's order.
    assert ids == list(range(len(tok) - len(SPECIAL_TOKENS), len(tok)))
    for t in SPECIAL_TOKENS:
        assert tok.encode(t, add_special_tokens=False) == [tok.convert_tokens_to_ids(t)]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.bos_token is None
    assert tok.encode("hello", add_special_tokens=True) == tok.encode("hello", add_special_tokens=False)


def test_digits_are_single_tokens(tok):
    text = '[{"bbox_2d":[12,30,555,80],"point_2d":[33,54]}]'
    pieces = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
    digit_pieces = [p for p in pieces if any(c.isdigit() for c in p)]
    # every piece holding a digit is one digit, except the "2" inside "bbox_2d" / "point_2d" keys
    assert all(len(p) == 1 for p in digit_pieces)
    assert "".join(p for p in digit_pieces) == "".join(c for c in text if c.isdigit())
    for d in "0123456789":
        assert len(tok.encode(d, add_special_tokens=False)) == 1


def test_common_words_are_compact(tok):
    # The corpus vocabulary should be learned as whole words (one token each, with the leading space).
    for word in [" red", " circle", " moving", " left", " the", " answer", " square"]:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_any_text_round_trips(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=40))
def test_token_bytes_table_matches_utf8(tok, table, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert b"".join(table[i] for i in ids) == text.encode("utf-8")


def test_chat_template_renders_qwen_format(tok):
    assert tok.chat_template == CHAT_TEMPLATE
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "find the cat"}]}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>find the cat<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tok.encode(text, add_special_tokens=False)
    for special in ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]:
        assert tok.convert_tokens_to_ids(special) in ids
    with_system = [{"role": "system", "content": "S."}, {"role": "user", "content": "hi"},
                   {"role": "assistant", "content": "ok"}]
    assert tok.apply_chat_template(with_system, tokenize=False) == (
        "<|im_start|>system\nS.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n"
    )


def test_too_small_vocab_is_rejected():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tiny_tokenizer(vocab_size=200)
