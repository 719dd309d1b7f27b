"""Dataset readers: one per released format, all producing :class:`~data.types.VideoSample`.

>>> reader = open_dataset("datasets/mevis", "mevis", split="valid_u")
>>> sample = reader[reader.video_ids()[0]]
>>> sample.expression_mask("0", 0)   # H x W bool, decoded now

Formats: ``mevis``, ``revos``, ``refytvos``, ``davis`` and ``synthetic`` (the
generator of :mod:`data.synthetic` writes the ReVOS layout by default, so it is read by
the ReVOS reader with ``dataset="synthetic"``; with ``layout=mevis|refytvos|davis`` it
writes the layout the reader of that name opens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from data.readers.base import DatasetReader
from data.readers.davis import DavisReader
from data.readers.mevis import MevisReader
from data.readers.refytvos import RefYoutubeVOSReader
from data.readers.revos import RevosReader

#: format name -> (reader class, dataset name stored in the samples)
READERS: dict[str, tuple[type[DatasetReader], str]] = {
    "mevis": (MevisReader, "mevis"),
    "revos": (RevosReader, "revos"),
    "refytvos": (RefYoutubeVOSReader, "refytvos"),
    "davis": (DavisReader, "davis"),
    "synthetic": (RevosReader, "synthetic"),
}


def open_dataset(root: str | Path, format: str, split: Optional[str] = None) -> DatasetReader:
    """Open one split of a data set; reads only its JSON metadata.

    root: the data set folder in its released layout, or the folder that directly holds
    ``meta_expressions.json``. split: e.g. ``train``, ``valid``, ``valid_u``; None = the
    reader's default (``valid`` for davis, else ``train``). Raises ``ValueError`` for an
    unknown format and :class:`~data.io.MissingFileError` / :class:`~data.io.CorruptFileError`
    naming the file when the metadata is missing or malformed.
    """
    if format not in READERS:
        raise ValueError(f"unknown data set format {format!r}; expected one of {sorted(READERS)}")
    cls, name = READERS[format]
    if split is None:
        return cls(root, name=name)
    return cls(root, split=split, name=name)


__all__ = ["open_dataset", "READERS", "DatasetReader", "MevisReader", "RevosReader", "RefYoutubeVOSReader",
           "DavisReader"]
