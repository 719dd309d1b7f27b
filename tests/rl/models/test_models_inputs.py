"""Chat messages, prompt encoding and the EncodedBatch container."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from rl.models.encoded_batch import EncodedBatch
from rl.models.inputs import build_messages, encode_for_sft, encode_for_training, encode_prompts, load_image
from rl.models.mrope import MRopeIndexer

RESPONSES = [[5, 6, 7, "EOS", 9, 9], [8, 9], [10, 11, 12, 13, 14]]


def _responses(processor):
    eos = processor.tokenizer.eos_token_id
    return [[eos if t == "EOS" else t for t in r] for r in RESPONSES]


def _assert_batches_equal(a: EncodedBatch, b: EncodedBatch):
    for name in ("input_ids", "attention_mask", "position_ids", "mm_token_type_ids", "responses", "response_mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for x, y in zip(a.pixel_values + a.image_grid_thw, b.pixel_values + b.image_grid_thw):
        assert (x is None and y is None) or torch.equal(x, y)
    assert a.pad_token_id == b.pad_token_id and tuple(a.rope_params) == tuple(b.rope_params)


def test_messages_put_images_first_then_text():
    msgs = build_messages({"prompt": "find it", "images": ["a.png", "b.png"]})
    assert msgs == [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                 {"type": "text", "text": "find it"}]}]
    msgs = build_messages({"prompt": "p", "system": "S"}, system_prompt="ignored")
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "S"}]}
    assert build_messages({"prompt": "p"}, system_prompt="T")[0]["content"][0]["text"] == "T"
    with pytest.raises(KeyError, match="prompt"):
        build_messages({"images": []})


def test_image_inputs_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="H x W x 3"):
        load_image(np.zeros((4, 4), dtype=np.uint8))
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 7, dtype=np.uint8)).save(tmp_path / "img.png")
    assert load_image(str(tmp_path / "img.png")).size == (30, 20)


def test_prompt_encoding_matches_the_processor(processor, samples):
    """encode_prompts == the processor applied by hand to the chat-template text."""
    enc = encode_prompts(processor, samples)
    for s, e in zip(samples, enc):
        content = [{"type": "image"}] * len(s.get("images", [])) + [{"type": "text", "text": s["prompt"]}]
        msgs = ([{"role": "system", "content": s["system"]}] if "system" in s else []) + [
            {"role": "user", "content": content}]
        text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ref = processor(text=[text], images=s.get("images") or None, return_tensors="pt")
        assert torch.equal(e.input_ids, ref["input_ids"][0])
        assert torch.equal(e.mm_token_type_ids, ref["mm_token_type_ids"][0].long())
        if s.get("images"):
            assert torch.equal(e.pixel_values, ref["pixel_values"])
        assert text.endswith("<|im_start|>assistant\n")
    # the same sample object repeated is processed once and shares its tensors
    rep = encode_prompts(processor, [samples[0]] * 3)
    assert rep[0].pixel_values is rep[2].pixel_values


def test_training_batch_layout(processor, samples):
    resp = _responses(processor)
    eos, pad = processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    b = encode_for_training(processor, samples, resp)
    prompts = encode_prompts(processor, samples)
    p_width = max(len(p) for p in prompts)
    kept = [[5, 6, 7, eos], [8, 9], [10, 11, 12, 13, 14]]  # cut after the first eos
    assert len(b) == 3 and b.prompt_width == p_width and b.response_width == 5
    for i, (p, r) in enumerate(zip(prompts, kept)):
        n = len(p)
        row = b.input_ids[i].tolist()
        assert row[:p_width - n] == [pad] * (p_width - n)  # left padding
        assert row[p_width - n:p_width] == p.input_ids.tolist()
        assert row[p_width:p_width + len(r)] == r
        assert row[p_width + len(r):] == [pad] * (5 - len(r))  # right padding
        assert b.attention_mask[i].tolist() == [0] * (p_width - n) + [1] * (n + len(r)) + [0] * (5 - len(r))
        assert b.responses[i, :len(r)].tolist() == r
        assert b.response_mask[i].tolist() == [1] * len(r) + [0] * (5 - len(r))
    assert torch.equal(b.mm_token_type_ids, (b.input_ids == image_pad).long())
    assert b.position_ids.shape == (3, 3, b.input_ids.shape[1])
    assert b.position_ids[:, b.attention_mask == 0].abs().sum() == 0


def test_mrope_positions_by_hand(processor, samples):
    """Text tokens count 0,1,2,...; an image's tokens get (t, h, w) = start + (0, row, col) on its
    2x2-merged grid; text after the image resumes at start + max(grid_h, grid_w)."""
    b = encode_for_training(processor, samples[:1], [[5, 6]])
    ids = b.input_ids[0][b.attention_mask[0].bool()]
    pos = b.position_ids[:, 0][:, b.attention_mask[0].bool()]
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    is_img = (ids == image_pad).tolist()
    start = is_img.index(True)
    _, gh, gw = (b.image_grid_thw[0][0] // torch.tensor([1, 2, 2])).tolist()
    expected = []
    for k in range(start):
        expected.append((k, k, k))
    for r in range(gh):
        for c in range(gw):
            expected.append((start, start + r, start + c))
    nxt = start + max(gh, gw)
    for k in range(len(ids) - start - gh * gw):
        expected.append((nxt + k,) * 3)
    assert [tuple(x) for x in pos.T.tolist()] == expected


def test_explicit_position_ids_equal_the_models_own(sharp_model, processor, samples):
    b = encode_for_training(processor, samples, _responses(processor))
    inputs = b.model_inputs()
    mask = b.attention_mask.bool()
    with torch.no_grad():
        explicit = sharp_model(**inputs).logits
        implicit = sharp_model(**{**inputs, "position_ids": None}).logits
        one_d = sharp_model(**{**inputs, "position_ids": None, "mm_token_type_ids": None}).logits
    assert (explicit - implicit)[mask].abs().max() < 1e-5
    # and positions matter: without mm_token_type_ids the model silently uses 1-D positions
    assert (explicit - one_d)[mask].abs().max() > 1e-2
    # MRopeIndexer built from the model config gives the same positions as from the processor
    rope = MRopeIndexer.from_model_config(sharp_model.config)
    assert rope.params == MRopeIndexer.from_processor(processor).params


def test_select_split_concat_pickle_round_trip(processor, samples):
    resp = _responses(processor)
    b = encode_for_training(processor, samples, resp)
    _assert_batches_equal(EncodedBatch.concat(b.split(2)), b)
    _assert_batches_equal(pickle.loads(pickle.dumps(b)), b)
    _assert_batches_equal(b.to("cpu"), b)
    # batches encoded separately (different widths) concatenate to the joint encoding
    parts = [encode_for_training(processor, samples[:1], resp[:1]),
             encode_for_training(processor, samples[1:], resp[1:])]
    assert parts[0].input_ids.shape != parts[1].input_ids.shape
    _assert_batches_equal(EncodedBatch.concat(parts), b)
    rev = b.select([2, 1, 0])
    _assert_batches_equal(rev.select([2, 1, 0]), b)
    assert rev.pixel_values[0] is None and rev.image_grid_thw[2].shape == (1, 3)
    with pytest.raises(IndexError):
        b.select([3])
    wide = b.padded_to(b.prompt_width + 4, b.response_width + 2)
    _assert_batches_equal(wide.trimmed(), b)


def test_sft_encoding_matches_full_chat_tokenisation(processor, samples):
    targets = ['<think>One object matches.</think><answer>[{"bbox_2d":[1,2,30,40],"point_2d":[5,6]}]</answer>',
               "<think>No.</think><answer>B</answer>", "hello"]
    b = encode_for_sft(processor, samples, targets)
    eos = processor.tokenizer.eos_token_id
    for i, (s, t) in enumerate(zip(samples, targets)):
        msgs = build_messages(s)
        full = processor.apply_chat_template(msgs + [{"role": "assistant", "content": t}], tokenize=False)
        full_ids = processor(text=[full], images=s.get("images") or None, return_tensors="pt")["input_ids"][0]
        prompt_ids = encode_prompts(processor, [s])[0].input_ids
        n = int(b.response_mask[i].sum())
        resp = b.responses[i, :n].tolist()
        assert resp[-1] == eos
        # chat-rendered conversation == prompt + response + the template's trailing newline
        assert full_ids.tolist() == prompt_ids.tolist() + resp + processor.tokenizer.encode("\n")
    with pytest.raises(ValueError, match="targets"):
        encode_for_sft(processor, samples, targets[:2])
