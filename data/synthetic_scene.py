"""Scene of a synthetic video: shapes, straight-line motion, background and rendering.

A scene is a list of :class:`SceneObject` (a coloured shape with a radius, a start
centre and a constant velocity in pixels per frame). :func:`render` draws them over a
background (later objects in front) and returns the frames with the visible masks.
The vocabulary and thresholds of the generator live in :class:`SceneRules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Optional, Sequence

import cv2
import numpy as np

from data.types import NO_TARGET, REASONING, REFERRING

if TYPE_CHECKING:
    from data.config import SyntheticConfig

_SUBPIXEL_BITS = 4  # cv2 fixed-point drawing: coordinates in 1/16 pixel


@dataclass(frozen=True)
class SceneRules:
    """Vocabulary and thresholds of the generator (defaults documented per field)."""

    # Colour name -> RGB; saturated so shapes stand out from the greyish background.
    colours: dict[str, tuple[int, int, int]] = field(default_factory=lambda: {
        "red": (230, 25, 25), "green": (20, 200, 40), "blue": (30, 60, 240),
        "yellow": (250, 225, 10), "purple": (160, 30, 210), "orange": (255, 130, 0),
    })
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "star")
    # One-pixel dark outline drawn inside each shape's mask.
    outline: tuple[int, int, int] = (15, 15, 15)
    # Ramp background: red ramps with x, green with y, between these values; blue constant.
    ramp_low: int = 60
    ramp_high: int = 190
    ramp_blue: int = 120
    plain_value: int = 128
    # "noise" background: a random grid of this many cells per side, upsampled (bicubic).
    noise_grid: int = 4
    # Probability that an object enters / leaves the frame during the video.
    p_enter: float = 0.2
    p_leave: float = 0.2
    # A leaving shape starts with its centre up to this fraction of the frame side beyond its
    # half-extent from the exit edge, and moves up to (1 + leave_speed_jitter) x the slowest
    # speed that takes it fully out by the last frame.
    leave_start_depth: float = 0.25
    leave_speed_jitter: float = 0.25
    # Probability that a new object copies the shape or the colour of an earlier one
    # (gives multi-target expressions such as "all the squares").
    p_share_attribute: float = 0.4
    # Smallest shape area relative to cfg.min_target_area * H * W (room for occlusion and cropping).
    area_headroom: float = 1.5
    # Motion: moving if the speed component >= min_move; "fastest" needs a lead >= speed_margin
    # (both as fractions of the frame side per frame).
    min_move: float = 0.01
    speed_margin: float = 0.01
    # "largest"/"smallest" need an area ratio >= size_margin to the runner-up.
    size_margin: float = 1.25
    # Order in which expression types are taken per video, cycled until cfg.max_expressions
    # (0 referring, 1 reasoning, 2 no target): about 3 : 2 : 1.
    type_cycle: tuple[int, ...] = (REFERRING, REASONING, REFERRING, NO_TARGET, REASONING, REFERRING)
    # No-target candidates drawn per video (absent colour-shape pairs).
    no_target_candidates: int = 2
    # Scene resampling attempts before giving up on a video.
    max_attempts: int = 200


@dataclass
class SceneObject:
    """One moving shape. Centre at frame ``t``: ``start + t * velocity`` (pixels, x right, y down)."""

    colour: str
    shape: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]

    def centre(self, t: int) -> tuple[float, float]:
        return self.start[0] + t * self.velocity[0], self.start[1] + t * self.velocity[1]


# ------------------------------------------------------------------------ shapes


def _unit_polygon(shape: str) -> Optional[np.ndarray]:
    """Vertices (``K x 2``, x right / y down) of a shape of radius 1; None for a circle."""
    if shape == "circle":
        return None
    if shape == "square":
        a = 0.85
        return np.array([[-a, -a], [a, -a], [a, a], [-a, a]])
    if shape == "triangle":
        angles = np.deg2rad([-90.0, 30.0, 150.0])
        return 1.15 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    if shape == "star":
        angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.2, 0.5)
        return radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    raise ValueError(f"unknown synthetic shape {shape!r}")


def draw_shape(canvas: np.ndarray, shape: str, centre: tuple[float, float], radius: float) -> None:
    """Set the pixels of a filled shape to 1 on ``canvas`` (``H x W`` uint8; clipped at the borders)."""
    scale = 1 << _SUBPIXEL_BITS
    cx, cy = int(round(centre[0] * scale)), int(round(centre[1] * scale))
    polygon = _unit_polygon(shape)
    if polygon is None:
        cv2.circle(canvas, (cx, cy), int(round(radius * scale)), 1, thickness=-1, lineType=cv2.LINE_8,
                   shift=_SUBPIXEL_BITS)
        return
    points = np.round((polygon * radius + np.array(centre)) * scale).astype(np.int32)
    cv2.fillPoly(canvas, [points], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)


@lru_cache(maxsize=None)
def shape_area_factor(shape: str) -> float:
    """Area of the shape divided by radius squared (measured by drawing it at radius 100)."""
    canvas = np.zeros((400, 400), np.uint8)
    draw_shape(canvas, shape, (200.0, 200.0), 100.0)
    return float(canvas.sum()) / 100.0**2


def shape_extent(shape: str) -> float:
    """Largest centre-to-boundary distance of the shape at radius 1."""
    polygon = _unit_polygon(shape)
    return 1.0 if polygon is None else float(np.linalg.norm(polygon, axis=1).max())


# ------------------------------------------------------------------------- scene


def _motion_inside(rng: np.random.Generator, size: int, reach: float, frames: int, max_speed: float) -> tuple[float, float]:
    """Start and speed on one axis keeping the shape (half-extent ``reach``) fully inside ``[0, size)``."""
    low, high = reach, size - 1 - reach
    if high <= low:
        return (size - 1) / 2.0, 0.0
    start = float(rng.uniform(low, high))
    if frames < 2:
        return start, 0.0
    span = frames - 1
    v_low = max(-max_speed, (low - start) / span)
    v_high = min(max_speed, (high - start) / span)
    return start, float(rng.uniform(v_low, v_high)) if v_high > v_low else 0.0


def _motion_leave(rng: np.random.Generator, size: int, reach: float, frames: int,
                  rules: SceneRules) -> tuple[float, float]:
    """Start and speed on one axis: fully inside at frame 0, fully outside at the last frame."""
    towards_high = bool(rng.integers(2))
    distance = float(rng.uniform(reach, reach + rules.leave_start_depth * size))  # centre to the exit edge
    speed = (distance + reach + 1.0) / (frames - 1) * float(rng.uniform(1.0, 1.0 + rules.leave_speed_jitter))
    if towards_high:
        return size - 1 - distance, speed
    return distance, -speed


def sample_objects(rng: np.random.Generator, cfg: SyntheticConfig, rules: SceneRules) -> list[SceneObject]:
    """Draw 1..``cfg.max_objects`` shapes with colours, sizes and straight-line motions."""
    colours = list(rules.colours)
    count = int(rng.integers(1, cfg.max_objects + 1))
    short_side = min(cfg.height, cfg.width)
    objects: list[SceneObject] = []
    for _ in range(count):
        colour = colours[int(rng.integers(len(colours)))]
        shape = rules.shapes[int(rng.integers(len(rules.shapes)))]
        if objects and rng.random() < rules.p_share_attribute:
            other = objects[int(rng.integers(len(objects)))]
            if rng.random() < 0.5:
                shape = other.shape
            else:
                colour = other.colour
        min_area = rules.area_headroom * cfg.min_target_area * cfg.height * cfg.width
        r_min = float(np.sqrt(min_area / shape_area_factor(shape)))
        r_max = max(r_min, cfg.max_object_size * short_side / 2.0 / shape_extent(shape))
        radius = float(rng.uniform(r_min, r_max))
        reach = radius * shape_extent(shape)
        (x0, vx), (y0, vy) = (
            _motion_inside(rng, cfg.width, reach, cfg.num_frames, cfg.max_speed * cfg.width),
            _motion_inside(rng, cfg.height, reach, cfg.num_frames, cfg.max_speed * cfg.height),
        )
        event = rng.random()
        if cfg.num_frames >= 2 and event < rules.p_enter + rules.p_leave:
            horizontal = bool(rng.integers(2))
            size = cfg.width if horizontal else cfg.height
            start, speed = _motion_leave(rng, size, reach, cfg.num_frames, rules)
            if horizontal:
                x0, vx = start, speed
            else:
                y0, vy = start, speed
            if event < rules.p_enter:  # entering = a leaving trajectory played backwards
                span = cfg.num_frames - 1
                x0, y0, vx, vy = x0 + span * vx, y0 + span * vy, -vx, -vy
        objects.append(SceneObject(colour, shape, radius, (x0, y0), (vx, vy)))
    return objects


def make_background(rng: np.random.Generator, cfg: SyntheticConfig, rules: SceneRules) -> np.ndarray:
    """``H x W x 3`` float32 background without per-frame noise."""
    h, w = cfg.height, cfg.width
    if cfg.background == "ramp":
        xs = np.linspace(rules.ramp_low, rules.ramp_high, w, dtype=np.float32)
        ys = np.linspace(rules.ramp_low, rules.ramp_high, h, dtype=np.float32)
        out = np.empty((h, w, 3), np.float32)
        out[..., 0] = xs[None, :]
        out[..., 1] = ys[:, None]
        out[..., 2] = rules.ramp_blue
        return out
    if cfg.background == "noise":
        grid = (rules.noise_grid, rules.noise_grid, 3)
        coarse = rng.uniform(rules.ramp_low, rules.ramp_high, size=grid).astype(np.float32)
        return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    if cfg.background == "plain":
        return np.full((h, w, 3), rules.plain_value, np.float32)
    raise ValueError(f"unknown synthetic background {cfg.background!r}; expected ramp | noise | plain")


def render(objects: Sequence[SceneObject], cfg: SyntheticConfig, rules: SceneRules,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the video; objects later in the list are in front.

    Returns frames ``T x H x W x 3`` uint8, visible masks ``N x T x H x W`` bool (occlusion
    applied, clipped to the frame) and in-frame areas ``N x T`` (ignoring occlusion).
    """
    n, t_count, h, w = len(objects), cfg.num_frames, cfg.height, cfg.width
    background = make_background(rng, cfg, rules)
    frames = np.empty((t_count, h, w, 3), np.uint8)
    visible = np.zeros((n, t_count, h, w), bool)
    in_frame = np.zeros((n, t_count), np.int64)
    kernel = np.ones((3, 3), np.uint8)
    for t in range(t_count):
        image = background + np.float32(cfg.noise_std) * rng.standard_normal(background.shape, dtype=np.float32)
        np.clip(image, 0, 255, out=image)
        owner = np.full((h, w), -1, np.int64)
        for k, obj in enumerate(objects):
            canvas = np.zeros((h, w), np.uint8)
            draw_shape(canvas, obj.shape, obj.centre(t), obj.radius)
            full = canvas.astype(bool)
            in_frame[k, t] = int(full.sum())
            if not in_frame[k, t]:
                continue
            border = full & ~cv2.erode(canvas, kernel).astype(bool)
            image[full] = rules.colours[obj.colour]
            image[border] = rules.outline
            owner[full] = k
        frames[t] = image.astype(np.uint8)
        for k in range(n):
            visible[k, t] = owner == k
    return frames, visible, in_frame


__all__ = [
    "SceneRules", "SceneObject", "draw_shape", "shape_area_factor", "shape_extent", "sample_objects",
    "make_background", "render",
]
