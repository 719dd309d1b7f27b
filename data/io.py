"""Image and JSON file I/O for dataset readers and the synthetic generator.

Every reader in :mod:`data.readers` goes through these functions, so a missing
or corrupt file always surfaces as :class:`MissingFileError` (a
``FileNotFoundError``) or :class:`CorruptFileError` (a ``ValueError``) whose
message and ``.path`` name the offending file.

Arrays: RGB images ``H x W x 3`` uint8; object-id maps ``H x W`` uint8.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

PathLike = Union[str, os.PathLike]

#: Default JPEG quality of :func:`write_jpeg` (high: colours and edges must survive).
DEFAULT_JPEG_QUALITY = 95


class MissingFileError(FileNotFoundError):
    """A data file that should exist does not. ``.path`` is the missing path."""

    def __init__(self, path: PathLike, what: str = "file"):
        self.path = Path(path)
        super().__init__(f"{what} not found: {self.path}")

    def __str__(self) -> str:  # FileNotFoundError's str() would drop our message
        return self.args[0]


class CorruptFileError(ValueError):
    """A data file exists but cannot be parsed. ``.path`` is the file, ``.reason`` the cause."""

    def __init__(self, path: PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"corrupt or unreadable file {self.path}: {reason}")


#: Exceptions a caller (e.g. the build step) should catch, report and count per bad entry.
DATA_ERRORS: tuple[type[Exception], ...] = (MissingFileError, CorruptFileError)


# ----------------------------------------------------------------------- palette


@lru_cache(maxsize=1)
def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL-VOC palette: ``256 x 3`` uint8, index 0 black, 1 dark red, 2 dark green, ...

    Colour of index ``i``: bits ``(0, 3, 6)`` of ``i`` set the top bit of R, ``(1, 4, 7)`` of G,
    ``(2, 5, 8)`` of B, filling from bit 7 downwards.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        rgb = [0, 0, 0]
        value = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = rgb
    return palette


# ------------------------------------------------------------------------ reading


def _open_image(path: PathLike, what: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, what)
    try:
        image = Image.open(path)
        image.load()  # decode now so truncation / corruption is reported here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}") from None
    return image


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` uint8 RGB (grey / palette / RGBA converted)."""
    image = _open_image(path, "image")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def image_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image from its header (no pixel decoding)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "image")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(path, f"{type(exc).__name__}: {exc}") from None
    return height, width


def read_palette_png(path: PathLike) -> np.ndarray:
    """Read an annotation PNG as ``H x W`` uint8 object ids (pixel value = object id).

    Palette ("P") and grey ("L") PNGs give their raw indices / values; binary ("1") PNGs
    give 0/1; RGB(A) PNGs are mapped back to indices through :func:`davis_palette`
    (an unknown colour raises :class:`CorruptFileError`).
    """
    image = _open_image(path, "annotation PNG")
    if image.mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8).copy()
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8).copy()
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return _rgb_to_ids(rgb, path)
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 255:
            raise CorruptFileError(path, f"object ids outside 0..255 in a {image.mode} PNG")
        return values.astype(np.uint8)
    raise CorruptFileError(path, f"unsupported PNG mode {image.mode!r} for an annotation")


def _rgb_to_ids(rgb: np.ndarray, path: PathLike) -> np.ndarray:
    palette = davis_palette().astype(np.int64)
    keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    palette_keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(k): i for i, k in reversed(list(enumerate(palette_keys)))}
    uniques, inverse = np.unique(keys, return_inverse=True)
    ids = np.empty(len(uniques), dtype=np.uint8)
    for n, key in enumerate(uniques):
        if int(key) not in lookup:
            colour = ((key >> 16) & 255, (key >> 8) & 255, key & 255)
            raise CorruptFileError(path, f"RGB annotation colour {colour} is not in the DAVIS palette")
        ids[n] = lookup[int(key)]
    return ids[inverse].reshape(rgb.shape[:2])


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file; missing -> :class:`MissingFileError`, bad JSON -> :class:`CorruptFileError`.

    Bytes that are not UTF-8 do not reject the file: they are decoded with
    ``errors="surrogateescape"`` (one lone surrogate per bad byte), the same as a
    ``"\\udc80"`` escape would give; the readers replace those where the text is used
    (:mod:`data.text`), so one bad byte costs one character, not the data set.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, what)
    try:
        with open(path, "r", encoding="utf-8", errors="surrogateescape") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"invalid JSON: {exc}") from None


# ------------------------------------------------------------------------ writing


def _prepare_parent(path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_palette_png(path: PathLike, ids: np.ndarray) -> None:
    """Write ``H x W`` object ids (0..255) as a palette PNG with the DAVIS palette."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"write_palette_png({path}): expected H x W ids, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise ValueError(f"write_palette_png({path}): ids must be in 0..255")
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    image.save(_prepare_parent(path), format="PNG")


def write_png(path: PathLike, array: np.ndarray) -> None:
    """Write ``H x W`` (grey; bool is saved as 0/255) or ``H x W x 3`` uint8 RGB as a PNG."""
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"write_png({path}): expected H x W or H x W x 3, got shape {array.shape}")
    Image.fromarray(array.astype(np.uint8)).save(_prepare_parent(path), format="PNG")


def write_jpeg(path: PathLike, rgb: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> None:
    """Write ``H x W x 3`` uint8 RGB as a JPEG (4:4:4 chroma, so thin colour edges survive)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_jpeg({path}): expected H x W x 3, got shape {rgb.shape}")
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(
        _prepare_parent(path), format="JPEG", quality=int(quality), subsampling=0
    )


def write_json_atomic(path: PathLike, obj: Any) -> None:
    """Write JSON through a temporary file in the same folder and ``os.replace`` it into place."""
    path = _prepare_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(obj, handle)
        os.chmod(tmp, 0o644)  # mkstemp files are private; data files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


__all__ = [
    "MissingFileError", "CorruptFileError", "DATA_ERRORS", "DEFAULT_JPEG_QUALITY", "davis_palette",
    "read_rgb", "image_size", "read_palette_png", "read_json", "write_palette_png", "write_png",
    "write_jpeg", "write_json_atomic",
]
