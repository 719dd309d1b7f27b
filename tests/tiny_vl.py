"""A tiny Qwen2.5-VL checkpoint with larger random weights, for tests that need distinct next-token
distributions (Qwen's 0.02 init gives near-uniform ones)."""

from __future__ import annotations

from pathlib import Path

import torch


def build_scaled_tiny_vl(folder: Path, scale: float = 0.1, seed: int = 0) -> Path:
    """Build the default tiny Qwen2.5-VL (112 px) in ``folder`` with every matrix drawn N(0, scale^2)."""
    from rl.models.config import TinyModelConfig
    from rl.models.loading import load_policy
    from rl.models.tiny import build_tiny_qwen25vl

    path = build_tiny_qwen25vl(folder, TinyModelConfig(), image_size=112)
    model = load_policy(path)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    model.save_pretrained(str(path))
    return path
