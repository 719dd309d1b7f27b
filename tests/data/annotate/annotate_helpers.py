"""Tiny built samples for the annotation-job tests: a hand-made 6-frame video with two objects,
turned into real KTG / AKS / Veason records by the :mod:`data.samples` builders (milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data import samples as S
from data.io import write_png
from data.types import REFERRING, Expression, VideoSample

T, H, W = 6, 40, 48
INPUT = (48, 40)   # [W, H]: the original size, so GT coordinates are the mask's own


def _masks() -> dict[str, np.ndarray]:
    first = np.zeros((T, H, W), bool)
    for t in range(T - 1):              # absent on the last frame (gives an AKS "B" frame)
        first[t, 4 + t:16 + t, 5 + 2 * t:20 + 2 * t] = True
    second = np.zeros((T, H, W), bool)
    second[:, 24:34, 30:44] = True
    return {"1": first, "2": second}


def make_video(tmp_path: Path) -> VideoSample:
    masks = _masks()
    rng = np.random.default_rng(0)
    paths = []
    for t in range(T):
        frame = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        for k, m in enumerate(masks.values()):
            frame[m[t]] = (200, 40 + 120 * k, 40)
        path = tmp_path / "frames" / f"{t:05d}.png"
        write_png(path, frame)
        paths.append(path)
    exps = {"0": Expression("0", "the red box.", ("1",), REFERRING),
            "1": Expression("1", "both shapes", ("1", "2"), REFERRING)}
    loaders = {k: (lambda t, a=v: a[t].copy()) for k, v in masks.items()}
    return VideoSample("synthetic", "train", "vid_a", [f"{t:05d}" for t in range(T)], paths, H, W, exps, loaders)


def build_records(tmp_path: Path, task: str, exp_id: str = "1", **options) -> list[dict]:
    """Records of one expression: KTG / Veason give one, AKS gives the A and the B record."""
    video = make_video(tmp_path)
    opts = S.SampleOptions(task=task, input_size=INPUT, num_sampled_frames=4, **options)
    writer = S.FrameImageWriter(tmp_path / "images")
    areas, failed = S.expression_areas(video)
    assert not failed
    if task == "ktg":
        return [S.build_ktg_record(video, exp_id, areas[exp_id], writer, opts)]
    if task == "veason":
        return [S.build_veason_record(video, exp_id, areas[exp_id], writer, opts)]
    candidates = S.aks_candidates(video, exp_id, areas[exp_id], seed=0)
    return [S.build_aks_record(video, c, writer, opts) for c in candidates]
