"""Evaluation data: which data set and videos an evaluation reads, and GT areas per expression.

``resolve_dataset`` picks ``(root, format, split)`` from ``eval.dataset_*`` or ``data.*``
(generating the synthetic ``valid`` split when needed), ``eval_set_config`` gives the config of
one of the extra sets of ``eval.datasets``, ``select_videos`` takes the first
``eval.max_videos`` ids, ``open_subset_reader`` gives the scorer a reader limited to the
predicted videos, and ``gt_union_areas`` measures the ground-truth union per frame.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np

from data.config import DATASET_FORMATS  # noqa: F401 - the one list of formats, re-exported
from data.types import VideoSample
from rl.config import Config

log = logging.getLogger(__name__)



def resolve_dataset(cfg: Config) -> tuple[str, str, Optional[str]]:
    """``(root, format, split)`` of the evaluation data (``eval.dataset_*``, else ``data.*``).

    Synthetic data default to the ``valid`` split, generated from ``data.synthetic`` when absent.
    """
    ev = cfg.eval
    root = ev.dataset_root or cfg.data.root
    fmt = ev.dataset_format or cfg.data.format
    split = ev.dataset_split or None
    if fmt == "synthetic":
        from data.synthetic import generate_synthetic_dataset

        split = split or "valid"
        generate_synthetic_dataset(root, cfg.data.synthetic, split)
    return root, fmt, split


def eval_set_config(cfg: Config, name: Optional[str] = None) -> Config:
    """The config of one evaluation set: ``cfg`` itself for the main set (``name`` None), else a copy
    whose ``eval.dataset_*`` / ``eval.max_videos`` are those of ``eval.datasets[name]`` (empty root
    and format: the main set's) and whose ``eval.out_dir`` is ``<main out_dir>/<name>``.

    Raises:
        KeyError: no set of that name in ``eval.datasets``.
    """
    import dataclasses
    from pathlib import Path

    if name is None:
        return cfg
    ev = cfg.eval
    found = [d for d in ev.datasets if d.name == name]
    if not found:
        raise KeyError(f"no evaluation set {name!r} in eval.datasets (names: {[d.name for d in ev.datasets]})")
    extra = found[0]
    out = Path(ev.out_dir or Path(cfg.trainer.run_dir) / "eval") / name
    sub = dataclasses.replace(ev, dataset_root=extra.dataset_root or ev.dataset_root,
                              dataset_format=extra.dataset_format or ev.dataset_format,
                              dataset_split=extra.dataset_split, max_videos=extra.max_videos, out_dir=str(out),
                              datasets=[])
    return dataclasses.replace(cfg, eval=sub)


def select_videos(ids: Sequence[str], limit: Optional[int], where: str = "", warn: bool = True) -> list[str]:
    """The first ``limit`` video ids (all when ``limit`` is None or < 0). A split with fewer videos than
    asked for is logged as a warning (``val/num_videos`` then shows how many were evaluated); the
    synthetic ``valid`` split has ``data.synthetic.num_videos`` videos."""
    ids = list(ids)
    if limit is None or limit < 0:
        return ids
    if warn and len(ids) < limit:
        log.warning("eval.max_videos = %d but the evaluation data %s has only %d videos: J&F is measured on %d "
                    "(synthetic data: raise data.synthetic.num_videos)", limit, where, len(ids), len(ids))
    return ids[:limit]


class _SubsetReader:
    """A dataset reader restricted to some of its videos (the ones this run predicted)."""

    def __init__(self, reader: Any, video_ids: Sequence[str]):
        self._reader = reader
        self._ids = list(video_ids)

    def video_ids(self) -> list[str]:
        return list(self._ids)

    def __getitem__(self, video_id: str) -> VideoSample:
        return self._reader[video_id]


def open_subset_reader(root: str, fmt: str, split: Optional[str], video_ids: tuple[str, ...]) -> _SubsetReader:
    """Picklable reader factory for :func:`rl.eval.scoring.run_score` (``open_reader``)."""
    from data.readers import open_dataset

    return _SubsetReader(open_dataset(root, fmt, split), video_ids)


def gt_union_areas(sample: VideoSample) -> dict[str, np.ndarray]:
    """Expression id -> ``T`` int64 GT union areas (pixels); each object mask is decoded once per frame."""
    objects = sorted({o for exp in sample.expressions.values() for o in exp.obj_ids})
    areas = {exp_id: np.zeros(sample.num_frames, dtype=np.int64) for exp_id in sample.expressions}
    for t in range(sample.num_frames):
        masks = {o: sample.object_mask(o, t) for o in objects}
        for exp_id, exp in sample.expressions.items():
            if exp.obj_ids:
                union = np.zeros((sample.height, sample.width), dtype=bool)
                for o in exp.obj_ids:
                    union |= masks[o]
                areas[exp_id][t] = int(union.sum())
    return areas


__all__ = ["DATASET_FORMATS", "eval_set_config", "resolve_dataset", "select_videos", "open_subset_reader", "gt_union_areas"]
