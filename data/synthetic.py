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

The scene (shapes, motion, background, rendering) is in :mod:`data.synthetic_scene` and the
expressions in :mod:`data.synthetic_expressions`; this module draws whole videos, writes the
data set and re-exports the public names of both.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from data import io as data_io
from data import rle as rle_codec
from data.config import SyntheticConfig
from data.synthetic_expressions import SyntheticExpression, candidate_expressions, select_expressions
from data.synthetic_scene import SceneObject, SceneRules, draw_shape, render, sample_objects, shape_area_factor
from data.types import REFERRING

logger = logging.getLogger(__name__)

#: Bump when the generator's output changes for the same config (invalidates cached data sets).
GENERATOR_VERSION = 1
MARKER_NAME = ".synthetic.json"


@dataclass
class SyntheticVideo:
    """A rendered video: ``frames`` ``T x H x W x 3`` uint8, ``masks`` ``N x T x H x W`` bool (visible)."""

    objects: list[SceneObject]
    frames: np.ndarray
    masks: np.ndarray
    expressions: list[SyntheticExpression]


# ------------------------------------------------------------------------ video


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
    defaults = dataclasses.asdict(SyntheticConfig())
    try:
        base = OmegaConf.create(defaults)
        OmegaConf.set_struct(base, True)  # an unknown key is an error naming it
        merged = OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist)))
        cfg = SyntheticConfig(**{key: _typed(key, defaults[key], value) for key, value in merged.items()})
        check_config(cfg)
    except (OmegaConfBaseException, ValueError) as exc:
        raise SystemExit(f"bad synthetic config override: {str(exc).splitlines()[0]}") from None
    return Path(argv[0]), cfg, split


def _typed(key: str, default: Any, value: Any) -> Any:
    """``value`` as the type of the field's default (an int field takes no float, no field takes a bool)."""
    if isinstance(value, type(default)) and not isinstance(value, bool):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{key} must be a {type(default).__name__}, got {value!r}")


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
