"""Fixtures of the vLLM backend tests.

Two kinds of test live here:

* tests of the pure helpers of ``rl.rollout.vllm*`` (``test_vllm_units.py``): run in any
  environment (the main one has no vLLM);
* tests against the real engine (``test_vllm_engine.py``): need ``vllm`` importable, i.e. they
  run in the vLLM CPU environment (``make test-vllm`` = ``.venv-vllm/bin/python -m pytest
  tests/rl/rollout/vllm``) and are skipped elsewhere; the cross-environment Ray test
  (``test_vllm_ray.py``) runs in the main environment and starts the rollout actor with
  ``.venv-vllm``'s interpreter.

The tiny Qwen2.5-VL checkpoint is built by the *main* environment's interpreter (as in
production, where the trainer's environment writes the checkpoints the engine serves):
``rl.models.tiny`` needs transformers' Qwen2-VL video processor, which needs torchvision,
which the vLLM CPU environment cannot have.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
MAIN_PYTHON = Path(os.environ.get("VRS_MAIN_PYTHON", REPO / ".venv" / "bin" / "python"))
VLLM_PYTHON = Path(os.environ.get("VRS_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
HAS_VLLM = importlib.util.find_spec("vllm") is not None

_BUILD = """
import sys, torch
from rl.config import TinyModelConfig
from rl.models.tiny import build_tiny_qwen25vl
from rl.models.loading import load_policy
out, seed = sys.argv[1], int(sys.argv[2])
build_tiny_qwen25vl(out, TinyModelConfig(), image_size=112)
if seed >= 0:  # re-draw weight matrices with std 0.15: next-token distributions far from uniform
    model = load_policy(out)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.15)
    model.save_pretrained(out)
"""


def build_checkpoint(out: Path, sharpen_seed: int = 1) -> Path:
    """Tiny Qwen2.5-VL (head_dim 64) at ``out``, built by the main environment's interpreter."""
    python = MAIN_PYTHON if MAIN_PYTHON.is_file() else Path(sys.executable)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(python), "-c", _BUILD, str(out), str(sharpen_seed)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the tiny checkpoint with {python} failed:\n{proc.stderr[-3000:]}")
    return out


@pytest.fixture(scope="session")
def sharp_dir(tmp_path_factory) -> Path:
    """Tiny checkpoint with sharpened weights (seed 1)."""
    return build_checkpoint(tmp_path_factory.mktemp("vllm_tiny") / "policy", sharpen_seed=1)


@pytest.fixture(scope="session")
def images():
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(6)]


@pytest.fixture(scope="session")
def image_prompts(images):
    """One image / two images + a system prompt: two prompt lengths."""
    return [
        {"prompt": "Find the red circle that is moving left.", "images": [images[0]]},
        {"prompt": "Which frame shows the blue square?", "images": [images[1], images[2]], "system": "Be brief."},
    ]
