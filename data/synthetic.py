"""Procedural synthetic videos, written in the ReVOS layout so the real readers load them.

Each video shows a few saturated, dark-outlined shapes (circle, square,
triangle, star) of several colours and sizes moving in straight lines over a
background; shapes occlude each other (random depth order) and may enter or
leave the frame. The default ``ramp`` background makes the red channel grow
with x and the green channel with y (plus mild noise), so absolute position is
visible to a vision tower without absolute position embeddings.

Expressions use a small regular vocabulary:

* referring (``type_id`` 0): ``"the red circle"``, ``"all the squares"``, ``"all the blue objects"``;
* reasoning (1): ``"the object that moves left fastest"``, ``"the fastest object"``,
  ``"the shape that leaves the scene"``, ``"the shape that enters the scene"``,
  ``"the largest object"``, ``"the smallest object"``, ``"the largest blue object"``;
* no target (2): ``"the purple star"`` when the video has no purple star.

Every expression with a target reaches ``cfg.min_target_area`` of the frame on
at least one frame. Output (``<out_dir>/<split>/``)::

    meta_expressions.json      ReVOS superset: per video vid_id, height, width, frames, expressions
                               {exp, obj_id, anno_id, type_id}, and "objects" (colour/shape per anno id)
    mask_dict.json             {anno_id: [COCO RLE or null per frame]} (visible, i.e. occluded, masks)
    mask_dict_foreground.json  {vid: {"masks_rle": [...], "foreground_ratio": [...]}}
    JPEGImages/<vid>/<frame>.jpg
    .synthetic.json            marker: config hash (regeneration is skipped when it matches)

The folder is written under a temporary name and renamed into place, so a
killed run never leaves a partial data set that looks complete. Everything is
deterministic given ``cfg.seed`` (each video uses ``default_rng([seed, crc32(split), index])``).

CLI: ``python -m data.synthetic OUT_DIR [split=train] [num_videos=8 height=64 ...]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from data import io as data_io
from data import rle as rle_codec
from data.types import NO_TARGET, REASONING, REFERRING
from rl.config import SyntheticConfig

logger = logging.getLogger(__name__)

#: Bump when the generator's output changes for the same config (invalidates cached data sets).
GENERATOR_VERSION = 1
MARKER_NAME = ".synthetic.json"
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


@dataclass
class SyntheticExpression:
    text: str
    targets: tuple[int, ...]   # object indices within the video
    type_id: int


@dataclass
class SyntheticVideo:
    """A rendered video: ``frames`` ``T x H x W x 3`` uint8, ``masks`` ``N x T x H x W`` bool (visible)."""

    objects: list[SceneObject]
    frames: np.ndarray
    masks: np.ndarray
    expressions: list[SyntheticExpression]


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


# ------------------------------------------------------------------- expressions


def _plural(shape: str) -> str:
    return shape + "s"


def _unique_max(values: np.ndarray, candidates: Sequence[int], margin: float, ratio: bool = False) -> Optional[int]:
    """Index in ``candidates`` with the largest value, if it leads the runner-up by ``margin``."""
    if not candidates:
        return None
    order = sorted(candidates, key=lambda k: -values[k])
    if len(order) == 1:
        return order[0]
    best, second = values[order[0]], values[order[1]]
    lead_ok = best >= margin * second if ratio else best - second >= margin
    return order[0] if lead_ok else None


def candidate_expressions(objects: Sequence[SceneObject], in_frame: np.ndarray, cfg: SyntheticConfig,
                          rules: SceneRules, rng: np.random.Generator) -> dict[int, list[SyntheticExpression]]:
    """All well-defined expressions of a scene, by type_id (targets not yet area-checked)."""
    n = len(objects)
    out: dict[int, list[SyntheticExpression]] = {REFERRING: [], REASONING: [], NO_TARGET: []}
    by_pair: dict[tuple[str, str], list[int]] = {}
    by_shape: dict[str, list[int]] = {}
    by_colour: dict[str, list[int]] = {}
    for k, obj in enumerate(objects):
        by_pair.setdefault((obj.colour, obj.shape), []).append(k)
        by_shape.setdefault(obj.shape, []).append(k)
        by_colour.setdefault(obj.colour, []).append(k)

    ref = out[REFERRING]
    for (colour, shape), ks in by_pair.items():
        text = f"the {colour} {shape}" if len(ks) == 1 else f"all the {colour} {_plural(shape)}"
        ref.append(SyntheticExpression(text, tuple(ks), REFERRING))
    for shape, ks in by_shape.items():
        if len(ks) > 1:
            ref.append(SyntheticExpression(f"all the {_plural(shape)}", tuple(ks), REFERRING))
    for colour, ks in by_colour.items():
        if len(ks) > 1:
            ref.append(SyntheticExpression(f"all the {colour} objects", tuple(ks), REFERRING))

    reason = out[REASONING]
    side = float(min(cfg.height, cfg.width))
    velocity = np.array([obj.velocity for obj in objects], dtype=np.float64).reshape(n, 2)
    if cfg.num_frames >= 2:
        directions = {"left": -velocity[:, 0], "right": velocity[:, 0], "up": -velocity[:, 1], "down": velocity[:, 1]}
        for name, component in directions.items():
            moving = [k for k in range(n) if component[k] >= rules.min_move * side]
            best = _unique_max(component, moving, rules.speed_margin * side)
            if best is not None:
                reason.append(SyntheticExpression(f"the object that moves {name} fastest", (best,), REASONING))
        speed = np.linalg.norm(velocity, axis=1)
        if n > 1:
            best = _unique_max(speed, [k for k in range(n) if speed[k] >= rules.min_move * side],
                               rules.speed_margin * side)
            if best is not None:
                reason.append(SyntheticExpression("the fastest object", (best,), REASONING))
        leaving = tuple(k for k in range(n) if in_frame[k, 0] > 0 and in_frame[k, -1] == 0)
        entering = tuple(k for k in range(n) if in_frame[k, 0] == 0 and in_frame[k, -1] > 0)
        for ks, verb in ((leaving, "leave"), (entering, "enter")):
            if len(ks) == 1:
                reason.append(SyntheticExpression(f"the shape that {verb}s the scene", ks, REASONING))
            elif len(ks) > 1:
                reason.append(SyntheticExpression(f"the shapes that {verb} the scene", ks, REASONING))
    area = np.array([shape_area_factor(o.shape) * o.radius**2 for o in objects])
    if n > 1:
        for word, values in (("largest", area), ("smallest", 1.0 / area)):
            best = _unique_max(values, list(range(n)), rules.size_margin, ratio=True)
            if best is not None:
                reason.append(SyntheticExpression(f"the {word} object", (best,), REASONING))
    for colour, ks in by_colour.items():
        if len(ks) > 1:
            best = _unique_max(area, ks, rules.size_margin, ratio=True)
            if best is not None:
                reason.append(SyntheticExpression(f"the largest {colour} object", (best,), REASONING))

    absent = [(c, s) for c in rules.colours for s in rules.shapes if (c, s) not in by_pair]
    for index in rng.permutation(len(absent))[:rules.no_target_candidates]:
        colour, shape = absent[int(index)]
        out[NO_TARGET].append(SyntheticExpression(f"the {colour} {shape}", (), NO_TARGET))
    return out


def select_expressions(candidates: dict[int, list[SyntheticExpression]], visible: np.ndarray,
                       cfg: SyntheticConfig, rules: SceneRules, rng: np.random.Generator) -> list[SyntheticExpression]:
    """Drop targets too small on every frame, then take types in ``rules.type_cycle`` order up to ``cfg.max_expressions``."""
    min_pixels = cfg.min_target_area * cfg.height * cfg.width
    pools: dict[int, list[SyntheticExpression]] = {}
    for type_id in (REFERRING, REASONING, NO_TARGET):
        pool = []
        for exp in candidates[type_id]:
            if exp.targets:
                union = visible[list(exp.targets)].any(axis=0)  # T x H x W
                if union.reshape(union.shape[0], -1).sum(axis=1).max() < min_pixels:
                    continue
            pool.append(exp)
        pools[type_id] = [pool[int(i)] for i in rng.permutation(len(pool))]
    chosen: list[SyntheticExpression] = []
    seen: set[str] = set()
    while len(chosen) < cfg.max_expressions and any(pools.values()):
        for type_id in rules.type_cycle:
            pool = pools.get(type_id)
            if pool and len(chosen) < cfg.max_expressions:
                exp = pool.pop(0)
                if exp.text not in seen:
                    seen.add(exp.text)
                    chosen.append(exp)
    return chosen


def generate_video(cfg: SyntheticConfig, rules: SceneRules, rng: np.random.Generator) -> SyntheticVideo:
    """Sample scenes until one has a referring expression with a large enough target, then render it."""
    for _ in range(rules.max_attempts):
        objects = sample_objects(rng, cfg, rules)
        frames, visible, in_frame = render(objects, cfg, rules, rng)
        expressions = select_expressions(candidate_expressions(objects, in_frame, cfg, rules, rng), visible, cfg, rules,
                                         rng)
        if any(exp.type_id == REFERRING for exp in expressions):
            return SyntheticVideo(objects, frames, visible, expressions)
    raise RuntimeError(
        f"synthetic generator: no scene with a target >= min_target_area={cfg.min_target_area} in "
        f"{rules.max_attempts} attempts; enlarge height/width or max_object_size, or lower min_target_area"
    )


# -------------------------------------------------------------------- data set


def check_config(cfg: SyntheticConfig) -> None:
    problems = []
    for key in ("num_videos", "num_frames", "height", "width", "max_objects", "max_expressions"):
        if getattr(cfg, key) < 1:
            problems.append(f"{key} must be >= 1")
    if not 0 < cfg.min_target_area < 1:
        problems.append("min_target_area must be in (0, 1)")
    if not 0 < cfg.max_object_size <= 1:
        problems.append("max_object_size must be in (0, 1]")
    if cfg.max_speed < 0 or cfg.noise_std < 0:
        problems.append("max_speed and noise_std must be >= 0")
    if not 1 <= cfg.jpeg_quality <= 100:
        problems.append("jpeg_quality must be in 1..100")
    if cfg.background not in ("ramp", "noise", "plain"):
        problems.append(f"background {cfg.background!r} must be ramp | noise | plain")
    if problems:
        raise ValueError("bad synthetic config: " + "; ".join(problems))


def config_hash(cfg: SyntheticConfig, split: str, rules: SceneRules) -> str:
    """Hash of everything that determines the generated files."""
    payload = {"config": dataclasses.asdict(cfg), "split": split, "rules": dataclasses.asdict(rules),
               "version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def video_rng(cfg: SyntheticConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, zlib.crc32(split.encode()), index])


def _write_split(folder: Path, cfg: SyntheticConfig, split: str, rules: SceneRules) -> None:
    videos: dict[str, Any] = {}
    mask_dict: dict[str, list] = {}
    foreground: dict[str, Any] = {}
    next_anno = 0
    frame_names = [f"{t:05d}" for t in range(cfg.num_frames)]
    pixels = cfg.height * cfg.width
    for index in range(cfg.num_videos):
        video = generate_video(cfg, rules, video_rng(cfg, split, index))
        vid = f"synth_{index:05d}"
        anno_ids = list(range(next_anno, next_anno + len(video.objects)))
        next_anno += len(video.objects)
        for t, name in enumerate(frame_names):
            data_io.write_jpeg(folder / "JPEGImages" / vid / f"{name}.jpg", video.frames[t], cfg.jpeg_quality)
        for k, anno in enumerate(anno_ids):
            mask_dict[str(anno)] = [rle_codec.encode_or_none(video.masks[k, t]) for t in range(cfg.num_frames)]
        union = video.masks.any(axis=0)  # T x H x W
        foreground[vid] = {"masks_rle": [rle_codec.encode(m) for m in union],
                           "foreground_ratio": [float(m.sum()) / pixels for m in union]}
        videos[vid] = {
            "vid_id": index, "height": cfg.height, "width": cfg.width, "frames": frame_names,
            "expressions": {
                str(e): {"exp": exp.text, "obj_id": list(exp.targets),
                         "anno_id": [anno_ids[k] for k in exp.targets], "type_id": exp.type_id}
                for e, exp in enumerate(video.expressions)
            },
            "objects": [{"obj_id": k, "anno_id": anno_ids[k], "colour": o.colour, "shape": o.shape}
                        for k, o in enumerate(video.objects)],
        }
    data_io.write_json_atomic(folder / "mask_dict.json", mask_dict)
    data_io.write_json_atomic(folder / "mask_dict_foreground.json", foreground)
    data_io.write_json_atomic(folder / "meta_expressions.json", {"videos": videos})


def _marker_hash(folder: Path) -> Optional[str]:
    marker = folder / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text()).get("config_hash")
    except (json.JSONDecodeError, OSError, AttributeError):
        return None


def generate_synthetic_dataset(out_dir: str | Path, cfg: SyntheticConfig, split: str = "train",
                               rules: Optional[SceneRules] = None) -> Path:
    """Write (or reuse) ``<out_dir>/<split>/`` and return it (the folder holding meta_expressions.json).

    An existing folder whose marker matches the config hash is reused as is; one with
    another hash is replaced; a folder without a marker (not ours) raises ``FileExistsError``.
    Safe to call from several processes at once (e.g. evaluator workers): the split appears
    atomically, and a complete split of the same config is never replaced while others read it.
    """
    rules = rules or SceneRules()
    if not isinstance(cfg, SyntheticConfig):  # e.g. a plain dict or an OmegaConf node
        cfg = SyntheticConfig(**dict(cfg))
    check_config(cfg)
    out_dir = Path(out_dir)
    final = out_dir / split
    digest = config_hash(cfg, split, rules)
    if _marker_hash(final) == digest:
        logger.info("synthetic data set %s is up to date (config hash %s)", final, digest[:12])
        return final
    if final.exists() and _marker_hash(final) is None:
        raise FileExistsError(f"{final} exists and is not a synthetic data set ({MARKER_NAME} missing); "
                              "refusing to overwrite it")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=out_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data set is meant to be shared
    try:
        _write_split(tmp, cfg, split, rules)
        marker = {"config_hash": digest, "split": split, "version": GENERATOR_VERSION,
                  "config": dataclasses.asdict(cfg)}
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        if _marker_hash(final) == digest:  # another process wrote the same data set meanwhile: use it
            logger.info("synthetic data set %s was written concurrently; reusing it", final)
            return final
        if final.exists():  # stale data set of ours: move it aside, then swap
            trash = Path(tempfile.mkdtemp(prefix=f".{split}.old-", dir=out_dir))
            os.rename(final, trash / split)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if _marker_hash(final) != digest:  # lost a race to a different config
                raise
        logger.info("wrote synthetic data set %s (%d videos)", final, cfg.num_videos)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _parse_cli(argv: Sequence[str]) -> tuple[Path, SyntheticConfig, str]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    usage = "usage: python -m data.synthetic OUT_DIR [split=train] [key=value ...]  (keys of SyntheticConfig)"
    if not argv or "=" in argv[0] or argv[0] in ("-h", "--help"):
        raise SystemExit(usage)
    split = "train"
    dotlist = []
    for item in argv[1:]:
        if "=" not in item:
            raise SystemExit(f"bad argument {item!r}\n{usage}")
        key, value = item.split("=", 1)
        if key == "split":
            split = value
        else:
            dotlist.append(f"{key}={value}")
    try:
        base = OmegaConf.structured(SyntheticConfig)
        cfg = OmegaConf.to_object(OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist)))
    except OmegaConfBaseException as exc:
        raise SystemExit(f"bad synthetic config override: {str(exc).splitlines()[0]}") from None
    return Path(argv[0]), cfg, split


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out_dir, cfg, split = _parse_cli(list(sys.argv[1:] if argv is None else argv))
    print(generate_synthetic_dataset(out_dir, cfg, split))
    return 0


__all__ = [
    "SceneRules", "SceneObject", "SyntheticExpression", "SyntheticVideo", "generate_synthetic_dataset",
    "generate_video", "sample_objects", "render", "candidate_expressions", "select_expressions", "draw_shape",
    "shape_area_factor", "config_hash", "video_rng", "MARKER_NAME", "GENERATOR_VERSION", "main",
]

if __name__ == "__main__":
    sys.exit(main())
