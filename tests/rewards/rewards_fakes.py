"""Test doubles for the vision models behind the reward terms (implement the Protocols of
``rewards.vision.base``) and small ground-truth builders."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from rewards.gt import encode_mask
from rewards.vision.base import ObjectPrompt


def box_mask(shape_hw: tuple[int, int], box: Sequence[float]) -> np.ndarray:
    """``H x W`` bool with the inclusive pixel box ``[x1, y1, x2, y2]`` filled."""
    mask = np.zeros(shape_hw, dtype=bool)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    mask[max(y1, 0): max(y2 + 1, 0), max(x1, 0): max(x2 + 1, 0)] = True
    return mask


class BoxFillSegmenter:
    """Segments each object as its (sanitised) box; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], list[list[ObjectPrompt]]]] = []

    def segment(self, image: np.ndarray, prompt_sets: Sequence[Sequence[ObjectPrompt]]) -> list[np.ndarray]:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        h, w = image.shape[:2]
        self.calls.append((image.shape, [list(p) for p in prompt_sets]))
        out = []
        for prompts in prompt_sets:
            mask = np.zeros((h, w), dtype=bool)
            for prompt in prompts:
                assert isinstance(prompt, ObjectPrompt)
                if prompt.box is not None:
                    x1, y1, x2, y2 = prompt.box
                    assert 0 <= x1 <= x2 <= w - 1 and 0 <= y1 <= y2 <= h - 1, prompt.box
                    mask |= box_mask((h, w), prompt.box)
                for (x, y), label in zip(prompt.points, prompt.labels):
                    assert 0 <= x <= w - 1 and 0 <= y <= h - 1 and label in (0, 1)
            out.append(mask)
        return out


class CopyPropagator:
    """Repeats the keyframe mask on every frame; records every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def propagate(self, frames, keyframe: int, mask: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        assert frames.ndim == 4 and frames.shape[1:3] == mask.shape
        self.calls.append(keyframe)
        return np.repeat(mask[None], frames.shape[0], axis=0)


def write_image(path: Path, size_wh: tuple[int, int], seed: int = 0) -> str:
    """A random RGB PNG of ``size_wh``; returns its path as str."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size_wh[1], size_wh[0], 3), dtype=np.uint8)).save(path)
    return str(path)


def rle(mask: np.ndarray) -> dict:
    return encode_mask(mask)
