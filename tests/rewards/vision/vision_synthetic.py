"""Synthetic images / videos with exactly known masks for the vision model tests.

Backgrounds carry a colour ramp (red with x, green with y) plus noise; shapes are
drawn with OpenCV and the same drawing on a boolean canvas is the ground truth.
"""

from __future__ import annotations

import cv2
import numpy as np

from rewards.vision.base import ObjectPrompt


def ramp_background(height: int, width: int, rng: np.random.Generator, noise: float = 12.0) -> np.ndarray:
    """``H x W x 3`` uint8: red ramps with x, green with y, blue constant, plus Gaussian noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([40 + 150 * xs / max(width - 1, 1), 40 + 150 * ys / max(height - 1, 1), np.full_like(xs, 90)], -1)
    image += rng.normal(0.0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_shape(image: np.ndarray, kind: str, center: tuple[int, int], size: int, color, rng, noise: float = 8.0):
    """Draw a filled ``kind`` (circle | square | triangle) in place; return its ``H x W`` bool GT mask."""
    canvas = np.zeros(image.shape[:2], np.uint8)
    cx, cy = center
    if kind == "circle":
        cv2.circle(canvas, (cx, cy), size, 1, -1)
    elif kind == "square":
        cv2.rectangle(canvas, (cx - size, cy - size), (cx + size, cy + size), 1, -1)
    elif kind == "triangle":
        pts = np.array([[cx, cy - size], [cx - size, cy + size], [cx + size, cy + size]], np.int32)
        cv2.fillPoly(canvas, [pts], 1)
    else:
        raise ValueError(kind)
    mask = canvas.astype(bool)
    textured = np.clip(np.asarray(color, np.float32) + rng.normal(0.0, noise, image.shape), 0, 255).astype(np.uint8)
    image[mask] = textured[mask]
    return mask


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    """``(x1, y1, x2, y2)`` of the extreme foreground pixels (inclusive)."""
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def inscribed_point(mask: np.ndarray) -> tuple[float, float]:
    """Centre ``(x, y)`` of the largest inscribed circle (maximum of the distance transform)."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def gt_prompt(mask: np.ndarray) -> ObjectPrompt:
    """Box + inscribed positive point of a GT mask."""
    return ObjectPrompt(box=box_of(mask), points=(inscribed_point(mask),), labels=(1,))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def translating_video(num_frames: int, size: int, step: tuple[int, int], rng, radius: int = 12):
    """Frames ``T x S x S x 3`` uint8 with a textured disc moving by ``step`` px/frame over a fixed textured
    background, and the GT masks ``T x S x S`` bool."""
    background = ramp_background(size, size, rng, noise=20.0)
    disc_texture = np.clip(np.array([220, 60, 200], np.float32) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    frames, masks = [], []
    for t in range(num_frames):
        cx, cy = size // 4 + t * step[0], size // 3 + t * step[1]
        canvas = np.zeros((size, size), np.uint8)
        cv2.circle(canvas, (cx, cy), radius, 1, -1)
        mask = canvas.astype(bool)
        # the texture moves with the disc
        shifted = np.roll(disc_texture, (t * step[1], t * step[0]), axis=(0, 1))
        frame = background.copy()
        frame[mask] = shifted[mask]
        frames.append(frame)
        masks.append(mask)
    return np.stack(frames), np.stack(masks)
