"""Build a tiny random-weight Qwen2.5-VL checkpoint offline (model + tokenizer + real processor).

The result is a normal Hugging Face checkpoint directory: ``from_pretrained`` /
``AutoProcessor.from_pretrained`` load it exactly like a released Qwen2.5-VL, so
every code path (processor, M-RoPE, generate, FSDP, vLLM) is exercised at tiny scale.

Choices that matter (see docs/learning.md, "A tiny Qwen2.5-VL that trains on CPU"):

* ``head_dim = hidden_size / num_attention_heads`` (Qwen2.5-VL derives it) must be
  >= 64 for vLLM on CPU; ``mrope_section`` sums to ``head_dim / 2`` with Qwen's
  1/4, 3/8, 3/8 split over (temporal, height, width);
* bos/eos/pad ids live in ``text_config`` and ``generation_config``
  (eos = ``<|im_end|>``; pad and bos = ``<|endoftext|>``, as in Qwen);
* the vision ``window_size`` covers the whole image so window attention is global;
* input embeddings and ``lm_head`` are tied, as in the small Qwen2.5 models;
* the image processor's pixel bounds make an ``image_size`` x ``image_size`` image
  exactly ``(image_size / 28)^2`` tokens after the 2x2 merge (112 px -> 16 tokens).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from rl.models.config import TinyModelConfig, tiny_shape_problems
from rl.schema import problems
from rl.models.tokenizer import EOS_TOKEN, PAD_TOKEN, train_tiny_tokenizer

__all__ = ["PATCH_SIZE", "MERGE_SIZE", "build_tiny_qwen25vl", "tiny_qwen25vl_config", "tiny_processor"]

PATCH_SIZE = 14
MERGE_SIZE = 2
_FACTOR = PATCH_SIZE * MERGE_SIZE  # 28 px per LLM image token side
_MIN_PIXELS = 56 * 56  # Qwen's default lower bound


def _check(cfg: TinyModelConfig, image_size: int) -> int:
    """Validate the tiny config (the rules of :func:`rl.models.config.tiny_shape_problems`, which the
    config loader applies too) and the image size; returns the attention head dim."""
    found = problems(cfg, "model.tiny") + [f"model.tiny.{name} {problem}" for name, problem in tiny_shape_problems(cfg)]
    if found:
        raise ValueError("; ".join(found))
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    if image_size < _FACTOR or image_size % _FACTOR:
        raise ValueError(f"tiny model image_size={image_size} must be a positive multiple of {_FACTOR}")
    return head_dim


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen's (temporal, height, width) split of the rotary half-dim: 1/4, 3/8, 3/8 (16/24/24 at head_dim 128)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_qwen25vl_config(cfg: TinyModelConfig, special_ids: dict[str, int], image_size: int = 112) -> Qwen2_5_VLConfig:
    """The ``Qwen2_5_VLConfig`` of the tiny policy. ``special_ids`` maps special token strings to ids."""
    head_dim = _check(cfg, image_size)
    window = max(112, math.ceil(image_size / 112) * 112)
    pad_id, eos_id = special_ids[PAD_TOKEN], special_ids[EOS_TOKEN]
    text = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": _mrope_section(head_dim)},
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=True,
    )
    vision = dict(
        depth=cfg.vision_depth,
        hidden_size=cfg.vision_hidden_size,
        intermediate_size=2 * cfg.vision_hidden_size,
        num_heads=cfg.vision_num_heads,
        out_hidden_size=cfg.hidden_size,
        patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE,
        temporal_patch_size=2,
        window_size=window,
        fullatt_block_indexes=[cfg.vision_depth - 1],
        tokens_per_second=2,  # Qwen2.5-VL's released value
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=special_ids["<|image_pad|>"],
        video_token_id=special_ids["<|video_pad|>"],
        vision_start_token_id=special_ids["<|vision_start|>"],
        vision_end_token_id=special_ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def tiny_processor(tokenizer, image_size: int = 112) -> Qwen2_5_VLProcessor:
    """The real ``Qwen2_5_VLProcessor`` with pixel bounds ``[56*56, image_size^2]``."""
    size = {"shortest_edge": min(_MIN_PIXELS, image_size * image_size), "longest_edge": image_size * image_size}
    common = dict(patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=2)
    image_processor = Qwen2VLImageProcessor(size=dict(size), **common)
    video_processor = Qwen2VLVideoProcessor(size=dict(size), **common)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=tokenizer.chat_template,
    )


def build_tiny_qwen25vl(out_dir: str | Path, cfg: TinyModelConfig | None = None, image_size: int = 112) -> Path:
    """Build, seed and save a tiny Qwen2.5-VL checkpoint in ``out_dir``; returns the directory.

    Writes ``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer
    files, ``processor_config.json`` (image + video processors) and ``chat_template.jinja``,
    plus ``tiny_build.json`` (the build arguments). Deterministic for a given ``cfg``.
    """
    cfg = cfg or TinyModelConfig()
    _check(cfg, image_size)  # fail before any work
    out = Path(out_dir)
    tokenizer = train_tiny_tokenizer(vocab_size=cfg.vocab_size, seed=0)
    special_ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in tokenizer.all_special_tokens}
    config = tiny_qwen25vl_config(cfg, special_ids, image_size)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=special_ids[PAD_TOKEN],
        eos_token_id=[special_ids[EOS_TOKEN], special_ids[PAD_TOKEN]],
        pad_token_id=special_ids[PAD_TOKEN],
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tiny_processor(tokenizer, image_size).save_pretrained(out)
    build_info = {"tiny": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "image_size": image_size}
    (out / "tiny_build.json").write_text(json.dumps(build_info, indent=2, sort_keys=True))
    return out
