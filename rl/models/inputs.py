"""Model inputs: chat messages from sample records, prompt encoding, training / SFT batches.

A sample record is ``{"prompt": str, "images": [path | PIL.Image | HxWx3 uint8 array, ...],
"system": str (optional)}``. The user turn shows the images first (in order), then the text,
and goes through the checkpoint's real processor (chat template, image processor,
``<|image_pad|>`` expansion, ``mm_token_type_ids``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from rl.models.encoded_batch import EncodedBatch
from rl.models.mrope import MRopeIndexer

__all__ = [
    "PromptEncoding",
    "EncodedBatch",
    "load_image",
    "build_messages",
    "encode_prompts",
    "collate_prompts",
    "default_stop_token_ids",
    "truncate_at_stop_token",
    "assemble_batch",
    "encode_for_training",
    "encode_for_sft",
]


@dataclass
class PromptEncoding:
    """One processed prompt.

    input_ids, mm_token_type_ids: ``(P_i,)`` long; pixel_values: ``(num_patches, C*T*p*p)``
    or ``None``; image_grid_thw: ``(num_images, 3)`` or ``None``.
    """

    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None

    def __len__(self) -> int:
        return self.input_ids.shape[0]


# ---------------------------------------------------------------------- messages


def load_image(image: Any, where: str = "image") -> Image.Image:
    """An RGB ``PIL.Image`` from a file path, a PIL image or an ``H x W x 3`` uint8 array."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"{where}: image file not found: {path}")
        with Image.open(path) as im:
            return im.convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{where}: image array must be H x W x 3, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"{where}: image array must be uint8, got {image.dtype}")
        return Image.fromarray(image)
    raise TypeError(f"{where}: unsupported image type {type(image).__name__} (path, PIL.Image or uint8 array)")


def build_messages(sample: Mapping[str, Any], system_prompt: str | None = None) -> list[dict[str, Any]]:
    """Chat messages for one sample: optional system turn, then a user turn with the images first
    (one ``{"type": "image"}`` part each) and the prompt text last. ``sample["system"]`` wins over
    ``system_prompt``; with neither, the chat template's default system prompt applies."""
    if "prompt" not in sample:
        raise KeyError(f"sample has no 'prompt' field (keys: {sorted(sample)})")
    system = sample.get("system", system_prompt)
    content: list[dict[str, Any]] = [{"type": "image"} for _ in sample.get("images") or ()]
    content.append({"type": "text", "text": str(sample["prompt"])})
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": content})
    return messages


def encode_prompts(
    processor, samples: Sequence[Mapping[str, Any]], system_prompt: str | None = None
) -> list[PromptEncoding]:
    """Process each sample's chat prompt (with the generation prompt ``<|im_start|>assistant\\n``).

    The same sample object appearing several times (e.g. repeated ``n`` times for a GRPO
    group) is processed once and its tensors are shared.
    """
    cache: dict[int, PromptEncoding] = {}
    out = []
    for i, sample in enumerate(samples):
        key = id(sample)
        if key not in cache:
            messages = build_messages(sample, system_prompt)
            text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            images = [load_image(im, f"sample {i} image {j}") for j, im in enumerate(sample.get("images") or ())]
            enc = processor(text=[text], images=images or None, return_tensors="pt", padding=False)
            cache[key] = PromptEncoding(
                input_ids=enc["input_ids"][0].long(),
                mm_token_type_ids=enc["mm_token_type_ids"][0].long(),
                pixel_values=enc.get("pixel_values") if images else None,
                image_grid_thw=enc.get("image_grid_thw").long() if images else None,
            )
        out.append(cache[key])
    return out


def collate_prompts(prompts: Sequence[PromptEncoding], pad_token_id: int) -> dict[str, torch.Tensor | None]:
    """Left-padded generation inputs: input_ids, attention_mask, mm_token_type_ids ``(B, P)``,
    pixel_values ``(sum patches, D)`` and image_grid_thw ``(sum images, 3)`` (or ``None``)."""
    width = max(len(p) for p in prompts)
    b = len(prompts)
    input_ids = torch.full((b, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((b, width), dtype=torch.long)
    mm_types = torch.zeros((b, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        n = len(p)
        input_ids[i, width - n:] = p.input_ids
        attention_mask[i, width - n:] = 1
        mm_types[i, width - n:] = p.mm_token_type_ids
    pix = [p.pixel_values for p in prompts if p.pixel_values is not None]
    grids = [p.image_grid_thw for p in prompts if p.image_grid_thw is not None]
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": mm_types,
        "pixel_values": torch.cat(pix) if pix else None,
        "image_grid_thw": torch.cat(grids) if grids else None,
    }


# ---------------------------------------------------------------------- responses


def default_stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end a response: the tokenizer's eos (``<|im_end|>``) and ``<|endoftext|>``."""
    ids = []
    for tok in (tokenizer.eos_token, "<|endoftext|>"):
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if tid is not None and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(int(tid))
    if not ids:
        raise ValueError("tokenizer has neither an eos token nor <|endoftext|>; pass stop_token_ids explicitly")
    return ids


def truncate_at_stop_token(token_ids: Sequence[int], stop_token_ids: Sequence[int]) -> list[int]:
    """``token_ids`` up to and including the first stop token (all of them if none)."""
    stops = set(int(t) for t in stop_token_ids)
    out = []
    for t in token_ids:
        out.append(int(t))
        if int(t) in stops:
            break
    return out


def assemble_batch(
    prompts: Sequence[PromptEncoding],
    responses: Sequence[Sequence[int]],
    pad_token_id: int,
    stop_token_ids: Sequence[int],
    rope: MRopeIndexer,
) -> EncodedBatch:
    """Pair processed prompts with response token ids into an :class:`EncodedBatch`.

    Responses are cut after their first stop token; ``response_mask`` covers the kept tokens.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if not prompts:
        raise ValueError("cannot build an EncodedBatch from zero samples")
    cut = [truncate_at_stop_token(r, stop_token_ids) for r in responses]
    b = len(prompts)
    p_width = max(len(p) for p in prompts)
    r_width = max(len(r) for r in cut)
    length = p_width + r_width
    input_ids = torch.full((b, length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((b, length), dtype=torch.long)
    mm_types = torch.zeros((b, length), dtype=torch.long)
    resp = torch.full((b, r_width), pad_token_id, dtype=torch.long)
    resp_mask = torch.zeros((b, r_width), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompts, cut)):
        n = len(p)
        input_ids[i, p_width - n:p_width] = p.input_ids
        attention_mask[i, p_width - n:p_width] = 1
        mm_types[i, p_width - n:p_width] = p.mm_token_type_ids
        if r:
            r_t = torch.tensor(r, dtype=torch.long)
            input_ids[i, p_width:p_width + len(r)] = r_t
            attention_mask[i, p_width:p_width + len(r)] = 1
            resp[i, :len(r)] = r_t
            resp_mask[i, :len(r)] = 1
    grids = [p.image_grid_thw for p in prompts if p.image_grid_thw is not None]
    position_ids = rope(input_ids, mm_types, attention_mask, torch.cat(grids) if grids else None)
    return EncodedBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        mm_token_type_ids=mm_types,
        responses=resp,
        response_mask=resp_mask,
        pixel_values=[p.pixel_values for p in prompts],
        image_grid_thw=[p.image_grid_thw for p in prompts],
        pad_token_id=int(pad_token_id),
        rope_params=rope.params,
    )


def _pad_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return default_stop_token_ids(tokenizer)[0]


def encode_for_training(
    processor,
    samples: Sequence[Mapping[str, Any]],
    response_token_ids: Sequence[Sequence[int]],
    stop_token_ids: Sequence[int] | None = None,
    rope: MRopeIndexer | None = None,
    system_prompt: str | None = None,
) -> EncodedBatch:
    """Batch of (sample prompt, response tokens) pairs, one row per response.

    ``samples[i]`` is the prompt of ``response_token_ids[i]`` (repeat a sample object for
    the ``n`` responses of a group; it is processed once). ``stop_token_ids`` default:
    :func:`default_stop_token_ids`. ``rope``: defaults to the processor's merge size and
    Qwen2.5-VL's ``tokens_per_second``; pass ``MRopeIndexer.from_model_config(model.config)``
    for a checkpoint with other values.
    """
    tokenizer = processor.tokenizer
    stops = list(stop_token_ids) if stop_token_ids is not None else default_stop_token_ids(tokenizer)
    prompts = encode_prompts(processor, samples, system_prompt)
    return assemble_batch(prompts, response_token_ids, _pad_id(tokenizer), stops,
                          rope or MRopeIndexer.from_processor(processor))


def encode_for_sft(
    processor,
    samples: Sequence[Mapping[str, Any]],
    targets: Sequence[str],
    rope: MRopeIndexer | None = None,
    system_prompt: str | None = None,
) -> EncodedBatch:
    """SFT batch: each target text + ``<|im_end|>`` is the response (the assistant turn).

    The SFT loss is ``-mean`` of the response log-probs over ``response_mask``
    (see :func:`rl.models.logprobs.sft_loss`).
    """
    if len(samples) != len(targets):
        raise ValueError(f"{len(samples)} samples but {len(targets)} SFT targets")
    tokenizer = processor.tokenizer
    if tokenizer.eos_token is None:
        raise ValueError("tokenizer has no eos token to end SFT targets with")
    responses = [tokenizer(str(t) + tokenizer.eos_token, add_special_tokens=False)["input_ids"] for t in targets]
    return encode_for_training(processor, samples, responses, stop_token_ids=[tokenizer.eos_token_id],
                               rope=rope, system_prompt=system_prompt)
