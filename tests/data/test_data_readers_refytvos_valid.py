"""Ref-YouTube-VOS valid: test-only videos dropped by the test meta file; unannotated videos summarised once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from data import io as data_io
from data.readers import open_dataset


def _meta(path: Path, videos: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"videos": {v: {"expressions": {"0": {"exp": f"object of {v}", "obj_id": "1"}},
                                               "frames": ["00000"]} for v in videos}}))


def release(root: Path, valid: list[str], test: list[str] | None, annotated: list[str] = ()) -> None:
    """A released-style Ref-YouTube-VOS tree: valid frames for every video, masks for ``annotated``."""
    _meta(root / "meta_expressions" / "valid" / "meta_expressions.json", valid)
    if test is not None:
        _meta(root / "meta_expressions" / "test" / "meta_expressions.json", test)
    for video in valid:
        data_io.write_jpeg(root / "valid" / "JPEGImages" / video / "00000.jpg", np.zeros((8, 8, 3), np.uint8))
    for video in annotated:
        ids = np.zeros((8, 8), np.uint8)
        ids[2:5, 2:5] = 1
        data_io.write_palette_png(root / "valid" / "Annotations" / video / "00000.png", ids)


def _records(caplog, level):
    return [r for r in caplog.records if r.name == "data.readers" and r.levelno == level]


def test_test_only_videos_are_dropped_with_one_info_line(tmp_path, caplog):
    videos = [f"v{i}" for i in range(6)]
    release(tmp_path, videos, test=["v1", "v3", "v4", "v5", "not_in_valid"])
    with caplog.at_level(logging.INFO, logger="data.readers"):
        reader = open_dataset(tmp_path, "refytvos", split="valid")
    assert reader.video_ids() == ["v0", "v2"] and len(reader) == 2 and "v3" not in reader
    assert reader.dropped_test_videos == ["v1", "v3", "v4", "v5"]
    infos = _records(caplog, logging.INFO)
    assert len(infos) == 1 and "4 test-only videos" in infos[0].getMessage() and "2 remain" in infos[0].getMessage()
    assert not _records(caplog, logging.WARNING)
    sample = reader["v2"]
    assert not sample.has_masks                          # valid masks are not released either
    # the test split itself keeps its videos
    assert open_dataset(tmp_path, "refytvos", split="test").video_ids() == ["v1", "v3", "v4", "v5", "not_in_valid"]


def test_without_test_meta_unannotated_videos_are_dropped_with_one_warning(tmp_path, caplog):
    videos = [f"v{i}" for i in range(9)]
    release(tmp_path, videos, test=None, annotated=["v0", "v4"])
    with caplog.at_level(logging.INFO, logger="data.readers"):
        reader = open_dataset(tmp_path, "refytvos", split="valid")
    assert reader.video_ids() == ["v0", "v4"]
    warnings = _records(caplog, logging.WARNING)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "7 of 9 videos" in message and "v1, v2, v3, v5, v6, ..." in message and "v8" not in message
    assert reader["v4"].has_masks and reader["v4"].object_mask("1", 0).sum() == 9


def test_split_released_without_masks_keeps_every_video(tmp_path, caplog):
    release(tmp_path, ["a", "b", "c"], test=None)
    with caplog.at_level(logging.INFO, logger="data.readers"):
        reader = open_dataset(tmp_path, "refytvos", split="valid")
    assert reader.video_ids() == ["a", "b", "c"]
    assert all(not s.has_masks for s in reader)
    assert not _records(caplog, logging.WARNING) and not _records(caplog, logging.INFO)
