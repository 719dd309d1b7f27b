"""COCO run-length encoding of binary masks (pycocotools), in the JSON form of MeViS / ReVOS.

An encoded mask is ``{"size": [H, W], "counts": str}`` (column-major COCO RLE,
compressed counts as a str so it can go into JSON). ``None`` stands for an
object absent from a frame (``null`` in ``mask_dict.json``).

pycocotools does not check that a compressed counts string covers exactly
``H * W`` pixels (a short string decodes to uninitialised memory), so
:func:`decode` validates the run lengths first and raises :class:`RLEError`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from pycocotools import mask as coco_mask


class RLEError(ValueError):
    """A malformed COCO RLE (bad structure, counts that do not cover ``H x W``, wrong size)."""


def encode(mask: np.ndarray) -> dict[str, Any]:
    """``H x W`` bool/0-1 mask -> ``{"size": [H, W], "counts": str}`` (always, even if empty)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle.encode expects an H x W mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def encode_or_none(mask: np.ndarray) -> Optional[dict[str, Any]]:
    """Like :func:`encode`, but ``None`` for an all-False mask (object absent)."""
    mask = np.asarray(mask)
    return encode(mask) if mask.any() else None


def _string_run_lengths_total(counts: str) -> int:
    """Sum of the run lengths in a compressed COCO counts string (its LEB128-like format).

    Each run length is 5-bit groups in characters ``48 + group``; bit 0x20 marks
    continuation, the last group's bit 0x10 is the sign; from the fourth run on, the
    value is the difference to the run two positions earlier.
    """
    runs: list[int] = []
    pos = 0
    length = len(counts)
    while pos < length:
        value = 0
        shift = 0
        more = True
        while more:
            if pos >= length:
                raise RLEError("counts string ends inside a run length")
            group = ord(counts[pos]) - 48
            if group < 0 or group > 63:
                raise RLEError(f"invalid character {counts[pos]!r} in counts string")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and (group & 0x10):
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
        if value < 0:
            raise RLEError(f"negative run length {value} in counts string")
    return sum(runs)


def validate(rle: Any, shape: Optional[Sequence[int]] = None) -> None:
    """Raise :class:`RLEError` unless ``rle`` is a well-formed RLE (of ``shape`` if given)."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise RLEError(f"expected a dict with 'size' and 'counts', got {type(rle).__name__}")
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
        raise RLEError(f"bad 'size' {size!r}; expected [H, W]")
    if shape is not None and (int(size[0]), int(size[1])) != (int(shape[0]), int(shape[1])):
        raise RLEError(f"RLE size {list(size)} does not match the expected {list(shape)[:2]}")
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        total = _string_run_lengths_total(counts)
    elif isinstance(counts, (list, tuple)):
        if not all(isinstance(v, int) and v >= 0 for v in counts):
            raise RLEError("uncompressed counts must be non-negative ints")
        total = sum(counts)
    else:
        raise RLEError(f"bad 'counts' of type {type(counts).__name__}")
    if total != size[0] * size[1]:
        raise RLEError(f"run lengths cover {total} pixels, expected {size[0]} x {size[1]} = {size[0] * size[1]}")


def decode(rle: Any, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """RLE -> ``H x W`` bool mask.

    ``rle`` may be ``None`` (absent: all False, ``shape`` required), a dict with str/bytes
    compressed counts or a list of uncompressed counts, or a list of such dicts (their
    union, as some tools store multi-part masks). ``shape`` ``(H, W)``, when given, must
    match the RLE size. Malformed input raises :class:`RLEError`.
    """
    if rle is None:
        if shape is None:
            raise RLEError("cannot decode an absent (None) RLE without a shape")
        return np.zeros((int(shape[0]), int(shape[1])), dtype=bool)
    if isinstance(rle, (list, tuple)):
        if not rle:
            raise RLEError("empty list of RLEs")
        parts = [decode(part, shape) for part in rle]
        out = parts[0].copy()
        for part in parts[1:]:
            if part.shape != out.shape:
                raise RLEError(f"multi-part RLE with different sizes {out.shape} and {part.shape}")
            out |= part
        return out
    validate(rle, shape)
    height, width = int(rle["size"][0]), int(rle["size"][1])
    counts = rle["counts"]
    if isinstance(counts, (list, tuple)):
        coco = coco_mask.frPyObjects({"size": [height, width], "counts": list(counts)}, height, width)
    else:
        coco = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    try:
        mask = coco_mask.decode(coco)
    except (ValueError, TypeError) as exc:
        raise RLEError(f"pycocotools could not decode the RLE: {exc}") from None
    return mask.astype(bool).reshape(height, width)


def area(rle: Any) -> int:
    """Number of foreground pixels of an RLE (0 for ``None``), without decoding."""
    if rle is None:
        return 0
    if isinstance(rle, (list, tuple)):
        return int(decode(rle).sum())
    validate(rle)
    counts = rle["counts"]
    if isinstance(counts, (list, tuple)):
        return int(sum(counts[1::2]))
    coco = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return int(coco_mask.area(coco))


__all__ = ["RLEError", "encode", "encode_or_none", "decode", "validate", "area"]
