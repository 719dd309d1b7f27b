"""Procedural synthetic videos, written in a benchmark's released layout so the real readers load them.

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
at least one frame. Output of the default ``revos`` layout (``<out_dir>/<split>/``; what
``data.format=synthetic`` generates and reads)::

    meta_expressions.json      ReVOS superset: per video vid_id, height, width, frames, expressions
                               {exp, obj_id, anno_id, type_id}, and "objects" (colour/shape per anno id)
    mask_dict.json             {anno_id: [COCO RLE or null per frame]} (visible, i.e. occluded, masks)
    mask_dict_foreground.json  {vid: {"masks_rle": [...], "foreground_ratio": [...]}}
    JPEGImages/<vid>/<frame>.jpg
    .synthetic.json            marker: config hash (regeneration is skipped when it matches)

``layout=mevis | refytvos | davis`` writes the same videos as MeViS, Ref-YouTube-VOS or the
converted Ref-DAVIS17 release lays them out (:mod:`data.synthetic_layouts`), read with
``data.format=<layout>``. Each folder of a split is written under a temporary name and
renamed into place with its marker, so a killed run never leaves a partial data set that
looks complete. Everything is deterministic given ``cfg.seed`` (each video uses
``default_rng([seed, crc32(split), index])``), and a split's videos do not depend on the layout.

The scene (shapes, motion, background, rendering) is in :mod:`data.synthetic_scene` and the
expressions in :mod:`data.synthetic_expressions`; this module draws whole videos, writes the
data set and re-exports the public names of both.

CLI: ``python -m data.synthetic OUT_DIR [layout=revos] [split=train,valid] [num_videos=8 height=64 ...]``
(``--help`` lists the layouts and keys).
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

from data import synthetic_layouts as layouts
from data.cli_help import print_help, wants_help
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


def config_hash(cfg: SyntheticConfig, split: str, rules: SceneRules, layout: str = "revos") -> str:
    """Hash of everything that determines the generated files (the default layout adds no key)."""
    payload = {"config": dataclasses.asdict(cfg), "split": split, "rules": dataclasses.asdict(rules),
               "version": GENERATOR_VERSION}
    if layout != "revos":
        payload["layout"] = layout
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def video_rng(cfg: SyntheticConfig, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, zlib.crc32(split.encode()), index])


def _write_split(staging: Path, cfg: SyntheticConfig, split: str, rules: SceneRules, layout: str = "revos") -> None:
    """Draw the split's videos and write them in ``layout`` under ``staging`` (one video in memory at a time)."""
    videos = ((index, generate_video(cfg, rules, video_rng(cfg, split, index))) for index in range(cfg.num_videos))
    layouts.write_split(staging, layout, split, cfg, videos)


def _marker_hash(folder: Path) -> Optional[str]:
    marker = folder / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text()).get("config_hash")
    except (json.JSONDecodeError, OSError, AttributeError):
        return None


def generate_synthetic_dataset(out_dir: str | Path, cfg: SyntheticConfig, split: str = "train",
                               rules: Optional[SceneRules] = None, layout: str = "revos") -> Path:
    """Write (or reuse) one split in ``layout`` under ``out_dir``; returns ``<out_dir>/<split>``.

    ``revos`` / ``mevis``: the returned folder holds ``meta_expressions.json`` (open it, or
    ``out_dir``, with the reader of the same name). ``refytvos`` / ``davis``: open ``out_dir``
    (``meta_expressions/<split>/`` is written beside ``<split>/``). Each folder of the split
    (:func:`data.synthetic_layouts.parts`) carries a marker with the config hash: a split whose
    markers all match is reused as is; one with another hash is replaced; a folder without a
    marker (not ours) raises ``FileExistsError``. Safe to call from several processes at once
    (e.g. evaluator workers): each folder appears atomically, and a complete split of the same
    config is never replaced while others read it.
    """
    rules = rules or SceneRules()
    if not isinstance(cfg, SyntheticConfig):  # e.g. a plain dict or an OmegaConf node
        cfg = SyntheticConfig(**dict(cfg))
    check_config(cfg)
    out_dir = Path(out_dir)
    names = layouts.parts(layout, split)
    final = out_dir / split
    digest = config_hash(cfg, split, rules, layout)
    if all(_marker_hash(out_dir / name) == digest for name in names):
        logger.info("synthetic data set %s is up to date (config hash %s)", final, digest[:12])
        return final
    for name in names:
        if (out_dir / name).exists() and _marker_hash(out_dir / name) is None:
            raise FileExistsError(f"{out_dir / name} exists and is not a synthetic data set ({MARKER_NAME} "
                                  "missing); refusing to overwrite it")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=out_dir))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the data set is meant to be shared
    try:
        _write_split(tmp, cfg, split, rules, layout)
        marker = {"config_hash": digest, "split": split, "version": GENERATOR_VERSION,
                  "config": dataclasses.asdict(cfg)}
        if layout != "revos":
            marker["layout"] = layout
        for name in names:
            os.chmod(tmp / name, 0o755)
            (tmp / name / MARKER_NAME).write_text(json.dumps(marker, indent=1))
        for name in names:  # the split's data first, its expression file last
            _install(tmp / name, out_dir / name, digest, out_dir)
        logger.info("wrote synthetic data set %s (%s layout, %d videos)", final, layout, cfg.num_videos)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _install(staged: Path, final: Path, digest: str, out_dir: Path) -> None:
    """Move one written folder into place, unless a complete one of the same config got there first."""
    if _marker_hash(final) == digest:  # another process wrote the same data set meanwhile: use it
        logger.info("synthetic data set %s was written concurrently; reusing it", final)
        return
    if final.exists():  # stale data set of ours: move it aside, then swap
        trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=out_dir))
        os.rename(final, trash / final.name)
        shutil.rmtree(trash, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staged, final)
    except OSError:
        if _marker_hash(final) != digest:  # lost a race to a different config
            raise


CLI_USAGE = "python -m data.synthetic OUT_DIR [layout=revos] [split=NAME[,NAME...]] [key=value ...]"
CLI_HELP = """usage: {usage}

Write procedural synthetic videos under OUT_DIR in the released layout of a benchmark, so
that the real reader of that format reads them (nothing is downloaded; a split whose
config is unchanged is reused, not rewritten).

  layout=revos     OUT_DIR/<split>/: ReVOS files (meta_expressions.json with type_id, mask_dict.json,
                   mask_dict_foreground.json, JPEGImages/); read with data.format=revos (or synthetic)
  layout=mevis     OUT_DIR/<split>/: MeViS files (meta_expressions.json, mask_dict.json, JPEGImages/)
  layout=refytvos  OUT_DIR/meta_expressions/<split>/meta_expressions.json + OUT_DIR/<split>/
                   (JPEGImages/, Annotations/ palette PNGs, meta.json): Ref-YouTube-VOS
  layout=davis     the same files as refytvos: Ref-DAVIS17 as data.convert davis17 writes it

  split=           the splits to write, comma-separated; default: train and the layout's
                   evaluation split ({eval_splits})

Keys (SyntheticConfig, the data.synthetic section of configs/default.yaml), with defaults:
{keys}

Read it with the reader of the same name, as real data, e.g.
  python -m data.synthetic runs/data/mevis layout=mevis num_videos=16
  python -m data.build data.format=mevis data.root=runs/data/mevis data.task=ktg out=ktg.jsonl
  (training: data.format=mevis data.root=runs/data/mevis; evaluation: eval.dataset_split=valid_u)
The folder(s) written are printed, one per split. docs/datasets.md ("Synthetic data") has the trees.
"""


def cli_help() -> str:
    """The ``--help`` text (keys and defaults from :class:`SyntheticConfig`)."""
    defaults = dataclasses.asdict(SyntheticConfig())
    keys = "\n".join(f"  {key}={value}" for key, value in defaults.items())
    eval_splits = ", ".join(f"{k}: {v}" for k, v in layouts.EVAL_SPLITS.items())
    return CLI_HELP.format(usage=CLI_USAGE, keys=keys, eval_splits=eval_splits)


def _parse_cli(argv: Sequence[str]) -> tuple[Path, SyntheticConfig, list[str], str]:
    """``(out_dir, config, splits, layout)`` from ``OUT_DIR key=value ...``; bad input exits (status 2)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    usage = f"usage: {CLI_USAGE}  (python -m data.synthetic --help lists the keys)"
    if not argv or "=" in argv[0] or argv[0].startswith("-"):
        _cli_exit(f"OUT_DIR must come first\n{usage}")
    splits: Optional[list[str]] = None
    layout = "revos"
    dotlist = []
    for item in argv[1:]:
        if "=" not in item:
            _cli_exit(f"bad argument {item!r}\n{usage}")
        key, value = item.split("=", 1)
        if key == "split":
            splits = [name.strip() for name in value.split(",") if name.strip()]
            if not splits:
                _cli_exit(f"split= names no split\n{usage}")
        elif key == "layout":
            layout = value
        else:
            dotlist.append(f"{key}={value}")
    if layout not in layouts.LAYOUTS:
        _cli_exit(f"unknown layout {layout!r}; expected one of {' | '.join(layouts.LAYOUTS)}")
    defaults = dataclasses.asdict(SyntheticConfig())
    try:
        base = OmegaConf.create(defaults)
        OmegaConf.set_struct(base, True)  # an unknown key is an error naming it
        merged = OmegaConf.to_container(OmegaConf.merge(base, OmegaConf.from_dotlist(dotlist)))
        cfg = SyntheticConfig(**{key: _typed(key, defaults[key], value) for key, value in merged.items()})
        check_config(cfg)
    except (OmegaConfBaseException, ValueError) as exc:
        _cli_exit(f"bad synthetic config override: {str(exc).splitlines()[0]}")
    splits = splits or list(dict.fromkeys(["train", layouts.EVAL_SPLITS[layout]]))
    return Path(argv[0]), cfg, splits, layout


def _cli_exit(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def _typed(key: str, default: Any, value: Any) -> Any:
    """``value`` as the type of the field's default (an int field takes no float, no field takes a bool)."""
    if isinstance(value, type(default)) and not isinstance(value, bool):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{key} must be a {type(default).__name__}, got {value!r}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status: 0 written (one folder printed per split), 2 bad arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        return print_help(cli_help())
    out_dir, cfg, splits, layout = _parse_cli(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for split in splits:
        print(generate_synthetic_dataset(out_dir, cfg, split, layout=layout), flush=True)
    logger.info("read with: data.format=%s data.root=%s data.split=%s", layout, out_dir, splits[0])
    return 0


__all__ = [
    "SceneRules", "SceneObject", "SyntheticExpression", "SyntheticVideo", "generate_synthetic_dataset",
    "generate_video", "sample_objects", "render", "candidate_expressions", "select_expressions", "draw_shape",
    "shape_area_factor", "config_hash", "video_rng", "MARKER_NAME", "GENERATOR_VERSION", "main",
]

if __name__ == "__main__":
    sys.exit(main())
