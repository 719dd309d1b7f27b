"""Factory: backends by config / name, defaults, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from rewards.vision import (
    ObjectPrompt,
    build_propagator,
    build_segmenter,
    default_propagator,
    default_segmenter,
)
from rewards.vision.flow import FlowPropagator
from rewards.vision.grabcut import GrabCutSegmenter
from rewards.vision.oracle import BoxFillSegmenter
from rewards.vision.config import SegmenterConfig


def test_defaults_are_the_classical_backends():
    seg, prop = default_segmenter(), default_propagator()
    assert isinstance(seg, GrabCutSegmenter)
    assert isinstance(prop, FlowPropagator)


def test_build_segmenter_from_config():
    assert isinstance(build_segmenter(None), GrabCutSegmenter)
    seg = build_segmenter(SegmenterConfig(backend="grabcut", grabcut_iterations=5))
    assert isinstance(seg, GrabCutSegmenter) and seg.iterations == 5
    oracle = build_segmenter(SegmenterConfig(backend="oracle_box"))
    assert isinstance(oracle, BoxFillSegmenter)
    (mask,) = oracle.segment(np.zeros((10, 10, 3), np.uint8), [[ObjectPrompt(box=(1, 1, 2, 2))]])
    assert mask.sum() == 4


def test_sam2_backend_missing_checkpoint(tmp_path):
    path = str(tmp_path / "ckpt" / "sam2.pt")
    with pytest.raises(FileNotFoundError, match="ckpt"):
        build_segmenter(SegmenterConfig(backend="sam2", checkpoint=path, image_size=256))


def test_unknown_names():
    with pytest.raises(ValueError, match="segmenter backend 'nope'"):
        build_segmenter(SegmenterConfig(backend="nope"))
    with pytest.raises(ValueError, match="propagator 'nope'"):
        build_propagator("nope")


def test_build_propagator():
    prop = build_propagator("flow", morph_kernel=0)
    assert isinstance(prop, FlowPropagator) and prop.kernel is None


def test_xmem_is_built_lazily_with_the_given_settings():
    from rewards.vision.xmem.propagator import XMemPropagator

    prop = build_propagator("xmem", segmenter=SegmenterConfig(device="cpu"), xmem_size=64)
    assert isinstance(prop, XMemPropagator)
    assert prop.size == 64 and str(prop.device) == "cpu"
    assert build_propagator("xmem", xmem_size=64, size=48).size == 48   # constructor kwargs win


def test_missing_propagator_checkpoints_name_the_config_key(tmp_path):
    missing = str(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match=r"eval\.xmem_checkpoint = .*absent\.pth"):
        build_propagator("xmem", xmem_checkpoint=missing, key_prefix="eval.")
    with pytest.raises(FileNotFoundError, match=r"^segmenter\.checkpoint = .*absent\.pth"):
        build_propagator("sam2", segmenter=SegmenterConfig(checkpoint=missing))
    with pytest.raises(ValueError, match="unknown eval.propagator 'nope'"):
        build_propagator("nope", key_prefix="eval.")


def test_sam2_modules_import_without_sam2_installed():
    """The SAM2 backends import torch/sam2 only when built; without sam2 building names the package."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['sam2'] = None; sys.modules['sam2.build_sam'] = None\n"
        "import rewards.vision.sam2_image as m, rewards.vision.sam2_video\n"
        "try:\n    m.Sam2ImageSegmenter(image_size=64)\nexcept ImportError as e:\n    print('IMPORT-ERROR', e)\n"
    )
    root = Path(__file__).resolve().parents[3]   # the repository root (not tests/, whose rewards/ would shadow)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "sam2" in out.stdout
