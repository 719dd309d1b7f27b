"""Common base of the dataset readers: locating files, the video index, lazy samples.

A reader reads only the JSON metadata (``meta_expressions.json`` and similar)
when it is opened; frames and masks are read when a
:class:`~data.types.VideoSample`'s loaders are called. Malformed entries raise
:class:`~data.io.CorruptFileError` / :class:`~data.io.MissingFileError` naming
the file (and the video) when the sample is built or the frame / mask is read.
Expression texts holding invalid code points (a ``"\\udc80"`` escape, or bytes
that are not UTF-8) are repaired, not rejected: each one is replaced by U+FFFD,
logged with the file, video and expression, and listed in the sample's
``extra["text_repairs"]`` so that the build counts it.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Sequence

from data import io as data_io
from data.text import clean_text
from data.types import NO_TARGET, REFERRING, TYPE_NAMES, Expression, VideoSample

logger = logging.getLogger("data.readers")

#: ``VideoSample.extra`` key: ``{exp_id: invalid code points replaced in its text}`` (see :meth:`DatasetReader._sample`).
TEXT_REPAIRS_KEY = "text_repairs"


def find_first(candidates: Sequence[Path], what: str) -> Path:
    """The first existing file of ``candidates``; else :class:`MissingFileError` listing them all."""
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise data_io.MissingFileError(candidates[0], f"{what} (looked for: {tried})")


class DatasetReader(ABC):
    """Index of one split of one data set; ``reader[video_id] -> VideoSample``.

    Subclasses set :attr:`name`, locate their files in :meth:`_locate` and build
    samples in :meth:`_build_sample`.
    """

    #: Data set name stored in :attr:`VideoSample.dataset`.
    name: str = ""
    #: File extension of frames under ``JPEGImages/<vid>/``.
    frame_ext: str = ".jpg"

    def __init__(self, root: str | Path, split: str = "train", name: str | None = None):
        self.root = Path(root)
        self.split = split
        if name is not None:
            self.name = name
        if not self.root.is_dir():
            raise data_io.MissingFileError(self.root, f"{self.name} data set root folder")
        self.meta_path, self.data_dir = self._locate()
        meta = data_io.read_json(self.meta_path, f"{self.name} expressions file")
        if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
            raise data_io.CorruptFileError(self.meta_path, "expected a JSON object with a 'videos' object")
        self._videos: dict[str, Any] = meta["videos"]
        self._warned_text: set[tuple[str, str]] = set()

    # ---------------------------------------------------------------- subclass API

    @abstractmethod
    def _locate(self) -> tuple[Path, Path]:
        """``(meta_expressions path, folder holding JPEGImages/ and annotations)``."""

    @abstractmethod
    def _build_sample(self, video_id: str, entry: dict[str, Any]) -> VideoSample:
        """A lazy :class:`VideoSample` from the video's metadata entry."""

    # ------------------------------------------------------------------ public API

    def video_ids(self) -> list[str]:
        """Video ids in file order."""
        return list(self._videos)

    def __len__(self) -> int:
        return len(self._videos)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._videos

    def __getitem__(self, video_id: str) -> VideoSample:
        if video_id not in self._videos:
            raise KeyError(f"video {video_id!r} not in {self.meta_path} ({len(self)} videos)")
        entry = self._videos[video_id]
        if not isinstance(entry, dict):
            raise data_io.CorruptFileError(self.meta_path, f"video {video_id!r}: entry is not an object")
        return self._build_sample(video_id, entry)

    def __iter__(self) -> Iterator[VideoSample]:
        for video_id in self._videos:
            yield self[video_id]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, meta={str(self.meta_path)!r}, videos={len(self)})"

    # ------------------------------------------------------------------- helpers

    def _error(self, video_id: str, reason: str) -> data_io.CorruptFileError:
        return data_io.CorruptFileError(self.meta_path, f"video {video_id!r}: {reason}")

    def _frame_names(self, video_id: str, entry: dict[str, Any]) -> list[str]:
        frames = entry.get("frames")
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) for f in frames):
            raise self._error(video_id, "'frames' must be a non-empty list of frame names")
        return frames

    def _frames_dir(self, video_id: str) -> Path:
        return self.data_dir / "JPEGImages" / video_id

    def _frame_paths(self, video_id: str, frames: list[str]) -> list[Path]:
        folder = self._frames_dir(video_id)
        return [folder / f"{name}{self.frame_ext}" for name in frames]

    def _expressions_entry(self, video_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        expressions = entry.get("expressions")
        if not isinstance(expressions, dict):
            raise self._error(video_id, "'expressions' must be an object")
        for exp_id, exp in expressions.items():
            if not isinstance(exp, dict) or not isinstance(exp.get("exp"), str):
                raise self._error(video_id, f"expression {exp_id!r} has no 'exp' text")
        return expressions

    def _type_id(self, video_id: str, exp_id: str, exp: dict[str, Any], obj_ids: tuple[str, ...], known: bool) -> int:
        """``type_id`` from the entry; else no-target when the entry lists no objects, else referring."""
        if "type_id" in exp:
            type_id = exp["type_id"]
            if type_id not in TYPE_NAMES:
                raise self._error(video_id, f"expression {exp_id!r}: type_id {type_id!r} not in {sorted(TYPE_NAMES)}")
            return int(type_id)
        return NO_TARGET if known and not obj_ids else REFERRING

    def _clean_expressions(self, video_id: str, expressions: dict[str, Expression]) -> dict[str, int]:
        """Replace invalid code points (:mod:`data.text`) in the texts, in place; ``{exp_id: number replaced}``.

        Each repair is logged once per reader, naming the metadata file, the video and the expression.
        """
        repairs: dict[str, int] = {}
        for exp_id, exp in expressions.items():
            text, replaced = clean_text(exp.text)
            if not replaced:
                continue
            expressions[exp_id] = dataclasses.replace(exp, text=text)
            repairs[exp_id] = replaced
            if (video_id, exp_id) not in self._warned_text:
                self._warned_text.add((video_id, exp_id))
                logger.warning("%s: video %r expression %r: %d invalid code point(s) in the text replaced by U+FFFD",
                               self.meta_path, video_id, exp_id, replaced)
        return repairs

    def _sample(self, video_id: str, frames: list[str], height: int, width: int,
                expressions: dict[str, Expression], **kwargs: Any) -> VideoSample:
        repairs = self._clean_expressions(video_id, expressions)
        if repairs:
            kwargs["extra"] = {**kwargs.get("extra", {}), TEXT_REPAIRS_KEY: repairs}
        return VideoSample(
            dataset=self.name, split=self.split, video_id=video_id, frame_names=frames,
            frame_paths=self._frame_paths(video_id, frames), height=int(height), width=int(width),
            expressions=expressions, **kwargs,
        )


__all__ = ["DatasetReader", "find_first", "TEXT_REPAIRS_KEY"]
