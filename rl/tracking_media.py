"""Media of the tracker (:mod:`rl.tracking`): evaluation overlays and sample-table images.

* Overlays (:class:`rl.eval.overlays.Overlay`): W&B gets one ``wandb.Image`` per expression
  with the keyframe enlarged to at least 384 px on its short side, two mask layers that can
  be switched on and off (``prediction``, ``ground_truth``) and a caption naming the video,
  expression, keyframe, query and J&F. The run directory gets the same overlays drawn into
  the pixels (prediction red, GT boundary green) as
  ``images/<name>/step_<step:06d>_<i>_<video>_<exp_id>.png`` plus ``step_<step:06d>.json``
  listing each file with its caption, so they are readable without W&B.
* Sample tables: an ``image`` column (:class:`rl.sample_views.SampleView`, rendered only
  when W&B is on).

W&B keeps the images of a table in a run-table artifact staged under ``$WANDB_DATA_DIR``
(default ``~/.local/share/wandb``). For an offline run, :func:`staging_in` points it at
``<run_dir>/wandb/data`` while a table is logged (unless ``WANDB_DATA_DIR`` is set), so the
offline run keeps everything it needs for ``wandb sync`` inside the run directory.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

DATA_DIR_ENV = "WANDB_DATA_DIR"


def write_overlay_files(out_dir: Path, overlays: Sequence[Any], step: int) -> list[Path]:
    """The drawn overlays as PNGs under ``out_dir`` and their captions in ``step_<step:06d>.json``."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    paths, index = [], []
    for i, item in enumerate(overlays):
        path = out_dir / f"step_{step:06d}_{i}_{item.slug()}.png"
        Image.fromarray(item.blended()).save(path)
        paths.append(path)
        index.append({"file": path.name, "video": item.video, "exp_id": item.exp_id, "query": item.query,
                      "keyframe": item.keyframe, "J&F": item.jf, "caption": item.caption()})
    (out_dir / f"step_{step:06d}.json").write_text(json.dumps(index, indent=1) + "\n")
    return paths


def overlay_images(wandb: Any, overlays: Sequence[Any]) -> list[Any]:
    """One ``wandb.Image`` per overlay: enlarged keyframe, ``prediction`` / ``ground_truth`` mask layers, caption."""
    images = []
    for item in overlays:
        frame, _, _ = item.layers()
        images.append(wandb.Image(frame, masks=item.mask_layers(), caption=item.caption()))
    return images


def table_images(wandb: Any, views: Sequence[Any]) -> list[Any]:
    """The ``image`` column: ``wandb.Image`` of each rendered view (None where there is nothing to show)."""
    cells: list[Any] = []
    for view in views:
        array: Optional[np.ndarray] = None
        if isinstance(view, np.ndarray):
            array = view
        elif view is not None:
            array = view.render()
        cells.append(wandb.Image(array) if array is not None else None)
    return cells


@contextlib.contextmanager
def staging_in(wandb_dir: Path, offline: bool) -> Iterator[None]:
    """Offline runs: stage W&B artifact files (table images) under ``<wandb_dir>/wandb/data``."""
    if not offline or os.environ.get(DATA_DIR_ENV):
        yield
        return
    os.environ[DATA_DIR_ENV] = str(Path(wandb_dir) / "wandb" / "data")
    try:
        yield
    finally:
        os.environ.pop(DATA_DIR_ENV, None)


__all__ = ["overlay_images", "staging_in", "table_images", "write_overlay_files"]
