"""A tiny text causal LM behind the worker's model hooks (test double for ``rl.models``).

Batches are prompt + response concatenated: every prompt token is valid, responses are
right-padded (``response_mask`` / ``attention_mask`` 0 after each response's length).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rl.config import ModelConfig
from rl.workers.model_hooks import ModelHooks

VOCAB = 64


@dataclass
class TextBatch:
    input_ids: torch.Tensor  # (B, P + R)
    attention_mask: torch.Tensor  # (B, P + R)
    responses: torch.Tensor  # (B, R)
    response_mask: torch.Tensor  # (B, R)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, indices: Sequence[int]) -> "TextBatch":
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return TextBatch(*(t[idx] for t in (self.input_ids, self.attention_mask, self.responses, self.response_mask)))

    def split(self, size: int) -> list["TextBatch"]:
        return [self.select(range(i, min(i + size, len(self)))) for i in range(0, len(self), size)]

    def to(self, device) -> "TextBatch":
        return TextBatch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.responses, self.response_mask)))


def make_batch(num: int, prompt_len: int = 5, response_len: int = 6, seed: int = 0) -> TextBatch:
    gen = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, VOCAB, (num, prompt_len), generator=gen)
    responses = torch.randint(0, VOCAB, (num, response_len), generator=gen)
    lengths = torch.randint(1, response_len + 1, (num,), generator=gen)
    response_mask = (torch.arange(response_len)[None, :] < lengths[:, None]).long()
    responses = responses * response_mask
    input_ids = torch.cat([prompts, responses], dim=1)
    attention_mask = torch.cat([torch.ones_like(prompts), response_mask], dim=1)
    return TextBatch(input_ids, attention_mask, responses, response_mask)


def text_logprobs(model, batch: TextBatch, temperature: float = 1.0, with_entropy: bool = False):
    """(logp (B, R), entropy (B, R) | None) of the response tokens."""
    num_resp = batch.responses.shape[1]
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logits = logits[:, -num_resp - 1:-1].float() / temperature
    logsm = torch.log_softmax(logits, dim=-1)
    logp = logsm.gather(-1, batch.responses.unsqueeze(-1)).squeeze(-1)
    entropy = -(logsm.exp() * logsm).sum(-1) if with_entropy else None
    return logp, entropy


def load_text_model(path: str, model_cfg: ModelConfig):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")


TEXT_HOOKS = ModelHooks(load=load_text_model, logprobs=text_logprobs)


def build_text_model(out_dir: Path, seed: int = 0, tie: bool = False) -> Path:
    """Save a random tiny Qwen2 LM (2 layers) plus a stand-in tokenizer file; returns the folder."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=VOCAB, tie_word_embeddings=tie,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = Qwen2ForCausalLM(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    (out_dir / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    return out_dir


def rollout_data(model_dir, num=8, seed=0):
    """A batch with old log-probs off-policy enough to clip, reference log-probs and advantages."""
    batch = make_batch(num, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    model = load_text_model(str(model_dir), ModelConfig())
    with torch.no_grad():
        logp, _ = text_logprobs(model, batch)
    mask = batch.response_mask.float()
    old = (logp + 0.3 * torch.randn(logp.shape, generator=gen)) * mask
    ref = (logp + 0.1 * torch.randn(logp.shape, generator=gen)) * mask
    adv = torch.randn(num, 1, generator=gen).expand_as(mask) * mask
    return batch, adv, old, ref
