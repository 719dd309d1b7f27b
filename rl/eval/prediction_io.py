"""Reading predicted masks laid out ``PRED/<video>/<expression id>/<frame>.png``.

A prediction PNG is foreground where its value is non-zero: palette PNGs by
palette index (index 0 = background), grey PNGs by grey value (0/1 or 0/255
alike), colour PNGs where any of R, G, B is non-zero (alpha ignored).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

OK, MISSING, RESIZED, UNREADABLE = "ok", "missing", "resized", "unreadable"


def prediction_path(pred_dir: Path, video_id: str, exp_id: str, frame_name: str) -> Path:
    """``pred_dir/<video_id>/<exp_id>/<frame_name>.png``."""
    return Path(pred_dir) / video_id / str(exp_id) / f"{frame_name}.png"


def decode_mask_png(path: Path) -> np.ndarray:
    """``H x W`` bool foreground of one PNG (raises ``OSError``/``ValueError`` if it cannot be decoded)."""
    with Image.open(path) as img:
        img.load()
        mode = img.mode
        if mode in ("P", "1", "L", "I", "F") or mode.startswith("I;"):
            arr = np.asarray(img)
            return arr != 0
        if mode in ("LA", "PA"):
            return np.asarray(img)[..., 0] != 0
        rgb = np.asarray(img.convert("RGB"))
        return rgb.any(axis=-1)


def read_prediction_mask(path: Path, height: int, width: int) -> tuple[np.ndarray, str]:
    """Predicted ``height x width`` bool mask and what happened reading it.

    Returns ``(mask, status)``: status ``"ok"``; ``"missing"`` (no file: empty
    mask); ``"unreadable"`` (not a decodable image: empty mask); ``"resized"``
    (another size: resized to ``height x width`` by nearest neighbour,
    ``cv2.INTER_NEAREST``).
    """
    path = Path(path)
    if not path.is_file():
        return np.zeros((height, width), dtype=bool), MISSING
    try:
        mask = decode_mask_png(path)
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError):
        return np.zeros((height, width), dtype=bool), UNREADABLE
    if mask.ndim != 2 or mask.size == 0:
        return np.zeros((height, width), dtype=bool), UNREADABLE
    if mask.shape != (height, width):
        resized = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        return resized.astype(bool), RESIZED
    return mask, OK
