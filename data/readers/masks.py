"""Lazy mask sources shared by the readers.

All loaders are small picklable callables ``loader(frame_index) -> H x W bool``,
so a :class:`~data.types.VideoSample` can be sent to another process (a Ray
worker): a big ``mask_dict.json`` is never pickled, only its path, and is
re-read there on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from data import io as data_io
from data import rle as rle_codec


class LazyJsonFile:
    """A JSON file parsed on first access, once, then kept (thread-safe).

    Used for ``mask_dict.json`` (hundreds of MB for MeViS/ReVOS) and
    ``mask_dict_foreground.json``. Pickling keeps only the path.
    """

    def __init__(self, path: Path, what: str):
        self.path = Path(path)
        self.what = what
        self._data: Optional[dict[str, Any]] = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._data is not None

    def data(self) -> dict[str, Any]:
        if self._data is None:
            with self._lock:
                if self._data is None:
                    data = data_io.read_json(self.path, self.what)
                    if not isinstance(data, dict):
                        raise data_io.CorruptFileError(self.path, f"expected a JSON object, got {type(data).__name__}")
                    self._data = data
        return self._data

    def entry(self, key: str) -> Any:
        data = self.data()
        if key not in data:
            raise data_io.CorruptFileError(self.path, f"no entry for key {key!r}")
        return data[key]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "what": self.what}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["what"])


def _decode_frame(rles: Any, index: int, shape: tuple[int, int], source: Path, label: str) -> np.ndarray:
    if not isinstance(rles, list):
        raise data_io.CorruptFileError(source, f"{label}: expected a list of per-frame RLEs, got {type(rles).__name__}")
    if index >= len(rles):
        raise data_io.CorruptFileError(source, f"{label}: {len(rles)} per-frame RLEs, frame {index} requested")
    try:
        return rle_codec.decode(rles[index], shape)
    except rle_codec.RLEError as exc:
        raise data_io.CorruptFileError(source, f"{label} frame {index}: broken RLE: {exc}") from None


class RleMaskLoader:
    """One object's masks from a MeViS/ReVOS ``mask_dict.json``: ``{anno_id: [RLE or null per frame]}``."""

    def __init__(self, mask_dict: LazyJsonFile, anno_id: str, shape: tuple[int, int]):
        self.mask_dict = mask_dict
        self.anno_id = anno_id
        self.shape = shape

    def __call__(self, index: int) -> np.ndarray:
        rles = self.mask_dict.entry(self.anno_id)
        return _decode_frame(rles, index, self.shape, self.mask_dict.path, f"anno_id {self.anno_id}")


class ForegroundLoader:
    """ReVOS ``mask_dict_foreground.json``: ``{video: {"masks_rle": [RLE per frame], "foreground_ratio": [...]}}``."""

    def __init__(self, foreground: LazyJsonFile, video_id: str, shape: tuple[int, int]):
        self.foreground = foreground
        self.video_id = video_id
        self.shape = shape

    def __call__(self, index: int) -> np.ndarray:
        entry = self.foreground.entry(self.video_id)
        if not isinstance(entry, dict) or "masks_rle" not in entry:
            raise data_io.CorruptFileError(self.foreground.path, f"video {self.video_id!r}: no 'masks_rle' list")
        return _decode_frame(entry["masks_rle"], index, self.shape, self.foreground.path, f"video {self.video_id}")


class PaletteAnnotations:
    """Per-frame palette PNGs of one video (``Annotations/<vid>/<frame>.png``), with a small LRU cache.

    ``ids(t)`` is the ``H x W`` uint8 object-id map of frame ``t``; a frame without a PNG
    (sparse annotation) gives all zeros. Several objects of one frame share one read.
    """

    def __init__(self, paths: Sequence[Path], shape: tuple[int, int], cache_size: int = 4):
        self.paths = [Path(p) for p in paths]
        self.shape = shape
        self.cache_size = cache_size
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def ids(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
        path = self.paths[index]
        if path.is_file():
            ids = data_io.read_palette_png(path)
            if ids.shape != tuple(self.shape):
                raise data_io.CorruptFileError(path, f"annotation size {ids.shape} differs from the video's {self.shape}")
        else:
            ids = np.zeros(self.shape, dtype=np.uint8)
        with self._lock:
            self._cache[index] = ids
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return ids

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "shape": self.shape, "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["paths"], state["shape"], state["cache_size"])


class PaletteMaskLoader:
    """One object's masks from palette PNGs: pixels whose value equals the object id."""

    def __init__(self, annotations: PaletteAnnotations, object_value: int):
        self.annotations = annotations
        self.object_value = object_value

    def __call__(self, index: int) -> np.ndarray:
        return self.annotations.ids(index) == self.object_value


__all__ = ["LazyJsonFile", "RleMaskLoader", "ForegroundLoader", "PaletteAnnotations", "PaletteMaskLoader"]
