"""A build's records streamed to ``<stem>.partial.jsonl`` while they are built.

:func:`data.build.build_samples` keeps every record in memory (the final order
and the train/val split are only known at the end) and writes the output file
atomically once all are built. Meanwhile each record is appended, as one
flushed JSONL line, to ``<out dir>/<out stem>.partial.jsonl``: when the build
fails late (a full disk, a parquet conversion error, Ctrl-C, a crash), what was
built so far survives there, in build order, loadable with
:func:`data.build.load_samples`. A successful build deletes the file; its name
says it is not a finished sample file. Encoding a record here is also where a
record holding text that cannot be written as UTF-8 is caught (one counted
skip, see :func:`encode_record`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, BinaryIO, Optional

__all__ = ["partial_path", "encode_record", "PartialSampleFile"]


def partial_path(out_path: str | Path) -> Path:
    """``<out dir>/<out stem>.partial.jsonl`` (``s.parquet`` -> ``s.partial.jsonl``)."""
    out = Path(out_path)
    return out.with_name(f"{out.stem}.partial.jsonl")


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSONL line (UTF-8, newline-terminated); raises ``UnicodeEncodeError`` for text that is not valid Unicode."""
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


class PartialSampleFile:
    """Append-only JSONL of the records built so far (each line flushed when it is added)."""

    def __init__(self, out_path: str | Path):
        self.path = partial_path(out_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self._handle: Optional[BinaryIO] = open(self.path, "wb")

    def add(self, record: dict[str, Any]) -> None:
        """Append ``record``; a ``UnicodeEncodeError`` leaves the file unchanged."""
        line = encode_record(record)
        assert self._handle is not None, "add() after close()"
        self._handle.write(line)
        self._handle.flush()
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Close and delete the file (the build finished and wrote its output)."""
        self.close()
        if self.path.exists():
            os.unlink(self.path)

    def keep(self) -> Optional[Path]:
        """Close; keep the file if it holds a record (returns its path), else delete it (returns None)."""
        if self.count == 0:
            self.discard()
            return None
        self.close()
        return self.path
