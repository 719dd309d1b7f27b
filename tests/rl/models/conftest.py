"""Shared fixtures: one tiny Qwen2.5-VL checkpoint per test session, built offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rl.config import TinyModelConfig
from rl.models.loading import load_policy, load_processor
from rl.models.tiny import build_tiny_qwen25vl


def sharpen_(model: torch.nn.Module, seed: int, std: float = 0.15) -> torch.nn.Module:
    """Re-draw every weight matrix with a larger std so next-token distributions are far from
    uniform (Qwen's 0.02 init makes almost every token equally likely, hiding bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    """One intra-op thread: on the shared 2-core machine, 2 threads make the tiny model's many
    small ops ~10x slower under load (measured on generate)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "policy", TinyModelConfig(), image_size=112)


@pytest.fixture(scope="session")
def processor(tiny_dir):
    return load_processor(tiny_dir)


@pytest.fixture(scope="session")
def sharp_model(tiny_dir):
    """A loaded tiny policy with sharpened weights. Read-only: do not modify in tests."""
    return sharpen_(load_policy(tiny_dir), seed=1)


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(4)]


@pytest.fixture(scope="session")
def samples(images):
    """Three prompts: one image, two images (with a system prompt), text only."""
    return [
        {"prompt": "Find the red circle that is moving left.", "images": [images[0]]},
        {"prompt": "Which frame shows the blue square?", "images": [images[1], images[2]], "system": "Be brief."},
        {"prompt": "Say hello."},
    ]
