"""Tiny synthetic data sets in every released layout, for tests of readers and input checks."""

from __future__ import annotations

from pathlib import Path

from data import synthetic_layouts as layouts
from data.config import SyntheticConfig
from data.synthetic import generate_synthetic_dataset


def write_every_layout(tmp_path_factory, cfg: SyntheticConfig) -> dict[str, Path]:
    """``{layout: root}``: ``train`` + the layout's evaluation split, each layout in its own folder."""
    roots = {}
    for layout in layouts.LAYOUTS:
        root = tmp_path_factory.mktemp(layout)
        for split in ("train", layouts.EVAL_SPLITS[layout]):
            generate_synthetic_dataset(root, cfg, split, layout=layout)
        roots[layout] = root
    return roots
