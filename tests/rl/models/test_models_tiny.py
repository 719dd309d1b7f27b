"""Tiny Qwen2.5-VL builder and checkpoint loading."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from transformers import (
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from rl.config import ModelConfig, TinyModelConfig
from rl.models.inputs import encode_prompts
from rl.models.loading import CheckpointError, ensure_policy, load_policy, load_processor
from rl.models.tiny import build_tiny_qwen25vl
from rl.models.tokenizer import train_tiny_tokenizer


def test_build_is_fast_and_deterministic(tmp_path, tiny_dir):
    start = time.perf_counter()
    out = build_tiny_qwen25vl(tmp_path / "again", TinyModelConfig())
    assert time.perf_counter() - start < 20.0  # seconds even on a loaded 2-core box
    a = load_policy(out).state_dict()
    b = load_policy(tiny_dir).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = load_policy(build_tiny_qwen25vl(tmp_path / "seed1", TinyModelConfig(seed=1))).state_dict()
    assert not torch.equal(a["model.language_model.layers.0.mlp.up_proj.weight"],
                           c["model.language_model.layers.0.mlp.up_proj.weight"])


def test_saved_config_follows_the_pitfalls(tiny_dir):
    model = load_policy(tiny_dir)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    cfg, tiny = model.config, TinyModelConfig()
    text = cfg.text_config
    tok = load_processor(tiny_dir).tokenizer
    assert text.hidden_size // text.num_attention_heads == tiny.head_dim == 64
    assert sum(text.rope_parameters["mrope_section"]) == tiny.head_dim // 2
    assert text.vocab_size == tiny.vocab_size >= len(tok)
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert (text.eos_token_id, text.pad_token_id, text.bos_token_id) == (im_end, eot, eot)
    assert model.generation_config.pad_token_id == eot
    assert im_end in model.generation_config.eos_token_id
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.vision_config.window_size >= 112
    assert cfg.vision_config.out_hidden_size == text.hidden_size
    # tied input/output embeddings, also after reload
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()


def test_reload_round_trips_weights_processor_and_tokenizer(tmp_path, tiny_dir):
    model = load_policy(tiny_dir)
    proc = load_processor(tiny_dir)
    assert isinstance(proc, Qwen2_5_VLProcessor)
    assert isinstance(proc.image_processor, Qwen2VLImageProcessor)
    assert isinstance(proc.video_processor, Qwen2VLVideoProcessor)
    model.save_pretrained(tmp_path / "copy")
    proc.save_pretrained(tmp_path / "copy")
    model2, proc2 = load_policy(tmp_path / "copy"), load_processor(tmp_path / "copy")
    s1, s2 = model.state_dict(), model2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    fresh = train_tiny_tokenizer(vocab_size=TinyModelConfig().vocab_size)
    text = 'The red circle.<think>a</think><answer>[{"bbox_2d":[1,2,3,4]}]</answer><|im_end|>'
    assert proc2.tokenizer.encode(text) == proc.tokenizer.encode(text) == fresh.encode(text)
    assert proc2.chat_template == proc.chat_template == fresh.chat_template
    assert proc2.image_processor.size == proc.image_processor.size


@pytest.mark.parametrize("hw, per_image", [((112, 112), 16), ((224, 224), 16), ((56, 84), 6)])
def test_image_prompt_has_expected_image_pad_count(processor, hw, per_image):
    img = np.zeros((*hw, 3), dtype=np.uint8)
    enc = encode_prompts(processor, [{"prompt": "find it", "images": [img, img]}])[0]
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((enc.input_ids == pad_id).sum()) == 2 * per_image
    assert torch.equal(enc.mm_token_type_ids, (enc.input_ids == pad_id).long())
    assert enc.image_grid_thw.shape == (2, 3)
    # patches of 14 px, merged 2x2: tokens = t * h * w / 4
    assert int(enc.image_grid_thw.prod(-1).sum()) // 4 == 2 * per_image
    assert enc.pixel_values.shape[0] == int(enc.image_grid_thw.prod(-1).sum())


def test_invalid_tiny_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="head_dim"):
        build_tiny_qwen25vl(tmp_path / "x", replace(TinyModelConfig(), num_attention_heads=2))
    with pytest.raises(ValueError, match="image_size"):
        build_tiny_qwen25vl(tmp_path / "y", TinyModelConfig(), image_size=100)


def test_missing_or_invalid_checkpoint_names_the_path(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(CheckpointError, match="no_such_model"):
        load_policy(missing)
    with pytest.raises(CheckpointError, match="no_such_model"):
        load_processor(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_policy(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="llama"):
        load_policy(tmp_path / "other")
    with pytest.raises(CheckpointError, match="no_such_model"):
        ensure_policy(ModelConfig(path=str(missing)), tmp_path)


def test_load_processor_pixel_override(tiny_dir):
    proc = load_processor(tiny_dir, max_pixels=56 * 56)
    img = np.zeros((112, 112, 3), dtype=np.uint8)
    enc = encode_prompts(proc, [{"prompt": "x", "images": [img]}])[0]
    assert int(enc.image_grid_thw.prod()) // 4 == 4
    with pytest.raises(ValueError, match="min_pixels"):
        load_processor(tiny_dir, min_pixels=10_000, max_pixels=100)


def test_ensure_policy_builds_once_and_reuses(tmp_path, tiny_dir):
    cfg = ModelConfig()
    path = ensure_policy(cfg, tmp_path, image_size=112)
    assert path == tmp_path / "tiny_init"
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert ensure_policy(cfg, tmp_path, image_size=112) == path
    assert weights.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tiny_init")]  # no temp leftovers
    # a changed tiny config rebuilds
    cfg2 = ModelConfig(tiny=TinyModelConfig(seed=5))
    ensure_policy(cfg2, tmp_path, image_size=112)
    assert json.loads((path / "tiny_build.json").read_text())["tiny"]["seed"] == 5
    # an incomplete directory (weights lost) is rebuilt
    weights.unlink()
    ensure_policy(cfg2, tmp_path, image_size=112)
    assert weights.is_file()
    # an explicit path is validated and returned
    assert ensure_policy(ModelConfig(path=str(tiny_dir)), tmp_path) == tiny_dir
