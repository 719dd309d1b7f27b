"""The ``model`` config section (policy checkpoint, tiny offline model) and the LoRA settings.

Imports nothing heavy: ``rl.config`` nests these dataclasses, :mod:`rl.models.tiny`,
:mod:`rl.models.loading` and the workers read them. ``Literal`` fields list their choices and
``Annotated[T, "<bound>"]`` states a range (checked at start-up; see :mod:`rl.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Iterator, Literal, Optional

#: Model weight dtypes.
DTYPES = ("float32", "bfloat16", "float16")
#: transformers attention implementations.
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass
class TinyModelConfig:
    """Tiny random Qwen2.5-VL built offline when ``model.path`` is empty."""

    # Text decoder hidden size.
    hidden_size: Annotated[int, ">= 1"] = 64
    # Text decoder MLP size.
    intermediate_size: Annotated[int, ">= 1"] = 128
    # Text decoder layers.
    num_hidden_layers: Annotated[int, ">= 1"] = 2
    # Qwen2.5-VL derives head_dim = hidden_size / num_attention_heads; head_dim must equal
    # it (checked at build) and be >= 64 for vLLM on CPU.
    num_attention_heads: Annotated[int, ">= 1"] = 1
    # Key/value heads (grouped-query attention).
    num_key_value_heads: Annotated[int, ">= 1"] = 1
    # Attention head size (>= 64 for vLLM on CPU).
    head_dim: Annotated[int, ">= 8"] = 64
    # Vision tower hidden size.
    vision_hidden_size: Annotated[int, ">= 1"] = 32
    # Vision tower blocks.
    vision_depth: Annotated[int, ">= 1"] = 2
    # Vision tower attention heads.
    vision_num_heads: Annotated[int, ">= 1"] = 2
    # Byte-level BPE vocabulary trained offline (Qwen special tokens included).
    vocab_size: Annotated[int, ">= 1"] = 1024
    # Seed of the random weights and of the tokenizer corpus.
    seed: Annotated[int, ">= 0"] = 0


def tiny_shape_problems(cfg: TinyModelConfig) -> list[tuple[str, str]]:
    """``(field, problem)`` for head sizes Qwen2.5-VL cannot build (empty when the shapes fit)."""
    found: list[tuple[str, str]] = []
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    if heads < 1 or kv_heads < 1 or cfg.vision_num_heads < 1:
        return found   # reported by the fields' own bounds
    if cfg.hidden_size % heads:
        found.append(("hidden_size", f"must be divisible by num_attention_heads = {heads}, got {cfg.hidden_size}"))
    else:
        head_dim = cfg.hidden_size // heads
        if head_dim != cfg.head_dim:
            found.append(("head_dim", f"must equal hidden_size / num_attention_heads = {cfg.hidden_size}/{heads} = "
                                      f"{head_dim} (Qwen2.5-VL derives it), got {cfg.head_dim}"))
        elif head_dim % 8:
            found.append(("head_dim", f"must be a multiple of 8 (M-RoPE sections), got {head_dim}"))
    if heads % kv_heads:
        found.append(("num_attention_heads", f"must be a multiple of num_key_value_heads = {kv_heads}, got {heads}"))
    if cfg.vision_hidden_size % cfg.vision_num_heads or (cfg.vision_hidden_size // cfg.vision_num_heads) % 4:
        found.append(("vision_hidden_size", f"/ vision_num_heads = {cfg.vision_hidden_size}/{cfg.vision_num_heads} "
                                            "must give a vision head dim divisible by 4"))
    return found


@dataclass
class LoraConfig:
    """LoRA adapters (peft): the SFT cold start (``sft.lora``) and the GRPO actor (``actor.lora``)."""

    rank: Annotated[int, ">= 0"] = 0  # 0 = full fine-tuning
    # LoRA scaling alpha.
    alpha: Annotated[int, ">= 1"] = 16
    # LoRA dropout.
    dropout: Annotated[float, ">= 0, < 1"] = 0.0
    # Module names that get LoRA adapters.
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.rank > 0 and not self.target_modules:
            yield "target_modules", "must name at least one module when rank > 0"


@dataclass
class ModelConfig:
    """The policy checkpoint and how it is loaded."""

    # HF checkpoint dir (Qwen2.5-VL, processor included). Empty: the SFT output of the run,
    # or a tiny model built offline.
    path: str = ""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    # float32 | bfloat16 | float16
    dtype: Literal[DTYPES] = "float32"
    # sdpa | eager | flash_attention_2
    attn_implementation: Literal[ATTN_IMPLEMENTATIONS] = "sdpa"
    # Recompute activations in the backward pass (saves memory).
    gradient_checkpointing: bool = False
    # Qwen2-VL image processor pixel bounds (None: the processor's own).
    min_pixels: Optional[Annotated[int, ">= 1"]] = None
    # Upper pixel bound of the image processor (None: the processor's own).
    max_pixels: Optional[Annotated[int, ">= 1"]] = None

    def validate(self) -> Iterator[tuple[str, str]]:
        """The tiny model's head sizes (only when it is built: no ``path``) and ordered pixel bounds."""
        if not self.path:
            for name, problem in tiny_shape_problems(self.tiny):
                yield f"tiny.{name}", problem
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            yield "min_pixels", f"must be <= max_pixels = {self.max_pixels}, got {self.min_pixels}"
