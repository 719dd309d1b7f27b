"""Reading predicted masks laid out ``PRED/<video>/<expression id>/<frame>.png``.

One PNG holds one expression's mask on one frame. Accepted encodings (the ones the
benchmarks' own tools write, and the ones :mod:`data.readers` reads annotations in):

* grey (``L``, 16-bit ``I;16`` / ``I``, float ``F``; the first channel of ``LA``):
  binary, i.e. every value is 0 or 1, or every value is 0 or the full scale
  (255, 65535, 1.0). The pipeline of :mod:`rl.eval.pipeline` writes 0/255.
* 1-bit (``1``).
* palette (``P`` / ``PA``, the DAVIS / Ref-YouTube-VOS annotation format): index 0 is
  the background, and at most ONE other index may occur (the object, whatever its
  index); two object indices in one expression's mask are ambiguous.
* colour (``RGB`` / ``RGBA``, alpha ignored): grey images (R = G = B) follow the grey
  rule; otherwise black is the background and at most one other colour may occur
  (e.g. the DAVIS palette's dark red for object 1).

Anything else raises :class:`PredictionFormatError` naming the file: a mask whose
background is 1..3 or a probability map would otherwise turn every non-zero pixel
into foreground. Soft grey maps are accepted only with an explicit ``threshold`` T
in (0, 1): foreground = value >= T x full scale; such frames are reported as
thresholded (binary files are read as binary whatever the threshold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

OK, MISSING, RESIZED, UNREADABLE = "ok", "missing", "resized", "unreadable"
#: Full scale of a grey PNG by PIL mode (float maps are 0..1).
FULL_SCALE = {"L": 255, "LA": 255, "I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I": 65535, "F": 1.0}
_SHOWN = 6  # distinct values / colours quoted in an error


class PredictionFormatError(ValueError):
    """A prediction PNG that is neither binary nor a one-object palette / colour mask (message names the file)."""


def prediction_path(pred_dir: Path, video_id: str, exp_id: str, frame_name: str) -> Path:
    """``pred_dir/<video_id>/<exp_id>/<frame_name>.png``."""
    return Path(pred_dir) / video_id / str(exp_id) / f"{frame_name}.png"


def _distinct(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.uint8:
        return np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    return np.unique(values)


def _shown(values: np.ndarray) -> str:
    head = ", ".join(str(v.item() if hasattr(v, "item") else v) for v in values[:_SHOWN])
    return head + (", ..." if len(values) > _SHOWN else "")


def _grey(values: np.ndarray, full: float, path: Path, threshold: Optional[float]) -> tuple[np.ndarray, bool]:
    distinct = _distinct(values)
    if set(distinct.tolist()) <= {0, 1}:
        return values == 1, False
    if set(distinct.tolist()) <= {0, full}:
        return values == full, False
    if threshold is None:
        raise PredictionFormatError(
            f"{path}: not a binary mask: {len(distinct)} distinct values ({_shown(distinct)}); expected 0/{full:g} "
            f"or 0/1. For soft / probability maps pass --threshold T (foreground = value >= T x {full:g})")
    return values >= threshold * full, True


def _single_object(labels: np.ndarray, background: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Foreground = not background, when at most one non-background label occurs."""
    others = np.unique(labels[~background]) if (~background).any() else labels[:0]
    if len(others) > 1:
        raise PredictionFormatError(
            f"{path}: {len(others)} object {what}s in one prediction ({_shown(others)}); a prediction holds one "
            f"expression's mask: background {'index 0' if what == 'index' else 'black'} plus at most one {what}")
    return ~background


def decode_mask_png(path: Path, threshold: Optional[float] = None) -> tuple[np.ndarray, bool]:
    """``(H x W bool foreground, whether the threshold was applied)`` of one prediction PNG.

    Raises :class:`PredictionFormatError` for a PNG that breaks the rules of the module
    docstring, ``OSError`` / ``ValueError`` when it cannot be decoded at all.
    """
    with Image.open(path) as img:
        img.load()
        mode = img.mode
        if mode == "1":
            return np.asarray(img, dtype=bool), False
        if mode in ("P", "PA"):
            indices = np.asarray(img)
            indices = indices[..., 0] if indices.ndim == 3 else indices
            return _single_object(indices, indices == 0, Path(path), "index"), False
        if mode in FULL_SCALE:
            values = np.asarray(img)
            values = values[..., 0] if values.ndim == 3 else values
            return _grey(values, FULL_SCALE[mode], Path(path), threshold)
        rgb = np.asarray(img.convert("RGB"))
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return _grey(rgb[..., 0], 255, Path(path), threshold)
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    return _single_object(packed, packed == 0, Path(path), "colour"), False


def read_prediction_mask(
    path: Path, height: int, width: int, threshold: Optional[float] = None
) -> tuple[np.ndarray, str, bool]:
    """Predicted ``height x width`` bool mask, what happened reading it, and whether it was thresholded.

    Returns ``(mask, status, thresholded)``: status ``"ok"``; ``"missing"`` (no file:
    empty mask); ``"unreadable"`` (not a decodable image: empty mask); ``"resized"``
    (another size: resized to ``height x width`` by nearest neighbour,
    ``cv2.INTER_NEAREST``). A decodable PNG that is not a valid mask raises
    :class:`PredictionFormatError`.
    """
    path = Path(path)
    empty = np.zeros((height, width), dtype=bool)
    if not path.is_file():
        return empty, MISSING, False
    try:
        mask, thresholded = decode_mask_png(path, threshold)
    except PredictionFormatError:
        raise
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError):
        return empty, UNREADABLE, False
    if mask.ndim != 2 or mask.size == 0:
        return empty, UNREADABLE, False
    if mask.shape != (height, width):
        resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        return resized.astype(bool), RESIZED, thresholded
    return mask, OK, thresholded


def check_threshold(threshold: Optional[float]) -> None:
    """``threshold`` must be None or in (0, 1) (a fraction of the full scale)."""
    if threshold is not None and not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1) (a fraction of the PNG's full scale), got {threshold}")


__all__ = ["OK", "MISSING", "RESIZED", "UNREADABLE", "FULL_SCALE", "PredictionFormatError", "prediction_path",
           "decode_mask_png", "read_prediction_mask", "check_threshold"]
