"""Training-sample builders: one :class:`~data.types.VideoSample` expression -> a JSON-able record.

Record schema (one dict per training prompt; JSONL line or parquet row)::

    {
      "id":            "<dataset>/<video_id>/<exp_id>/<task>[/A|/B]",   unique per file
      "task":          "ktg" | "aks" | "veason",
      "dataset":       "mevis" | "revos" | "refytvos" | "davis" | "synthetic",
      "video_id":      str,
      "exp_id":        str,
      "query":         str,            the expression text
      "type_id":       int,            0 referring, 1 reasoning, 2 no target (ReVOS convention)
      "num_targets":   int,            objects the expression refers to
      "images":        [abs path, ...] model-input images, ALREADY RESIZED to input_size (PNG);
                                       the model code puts one {"type": "image"} per entry,
                                       in this order, before the prompt text
      "frame_indices": [int, ...]      original frame index of each image
      "orig_size":     [W, H]          original frame size
      "input_size":    [W, H]          size of the images and of every GT coordinate
      "prompt":        str             task prompt text (no image placeholders)
      "sft_target":    str             CoT-SFT target: <think>...</think><answer>exact GT</answer>
      "reward":        str             default reward name for the task
      "split":         "train" | "val" added by data.build (held-out videos)
      "ground_truth":  {...}           below; every coordinate in input_size pixels
    }

``ground_truth`` per task (``masks`` are COCO RLEs ``{"size": [H, W], "counts": str}``
at ``input_size`` from :func:`data.rle.encode`):

* ``ktg``: ``{"objects": [{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y],
  "neg_point_2d": [x,y] | None}, ...], "masks": [RLE per object], "image_path": str,
  "input_size": [W, H], "keyframe": int}``. The keyframe is the frame of the largest
  union target area (first on ties). Objects absent from the keyframe (or vanishing
  when the mask is resized) are left out. ``image_path`` is the same resized PNG as
  ``images[0]``. A no-target expression gives ``{"objects": [], "masks": [], ...}``
  with a keyframe drawn uniformly (seeded). ``rewards.gt`` documents ``image_path`` as
  the original-resolution keyframe that the reward resizes; resizing the already
  resized PNG to ``input_size`` is the identity. ``difficulty`` (VideoSeg-R1) is added by an
  offline job when available; the builders do not invent one.
* ``aks``: ``{"answer": "A" | "B", "frame_index": int, "target_area": int}``: A = the
  keyframe (largest target area), B = a frame with zero target area.
* ``veason``: ``{"frames": [t, ...] sampled original indices (the valid
  keyframe_timestamp values), "frame_areas": [union area at input size per sampled
  frame], "keyframe": t, "objects": [{"bbox_2d"}, ...] on the keyframe,
  "frame_boxes": [[box per present object] per sampled frame], "frame_paths":
  [resized PNG per sampled frame] (== images), "frame_masks": [union RLE per sampled
  frame], "masks_per_frame": [[RLE per object of the expression, empty masks included]
  per sampled frame], "input_size": [W, H]}`` (key names as read by ``rewards.gt``).

Cue rules (:mod:`data.cues`): box from the extreme mask pixels, point = centre of the
maximum inscribed circle, negative point = a pixel at L1 distance ``(0, tau_neg]`` from
the object and outside every target of the expression. With ``cues_from="resized"``
(default) the cues are computed on the masks resized to ``input_size`` (nearest), so
they agree exactly with the stored GT masks (the point is always inside its mask); with
``cues_from="scaled"`` they are computed at the original resolution and mapped with the
``int(v * f + 0.5)`` rule, as VisionReasoner's reference code does (may differ by a pixel).

Every record is deterministic given ``SampleOptions.seed`` and its id (its random
choices use a generator seeded by both), whatever order records are built in.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from data import cues, prompts
from data.config import TASKS  # the one list of sample tasks (data.task's choices)
from data import rle as rle_codec
from data.types import VideoSample

__all__ = [
    "TASKS",
    "DEFAULT_REWARDS",
    "task_rewards",
    "SampleOptions",
    "SampleSkip",
    "DATA_EXCEPTIONS",
    "error_path",
    "FrameImageWriter",
    "record_rng",
    "expression_areas",
    "object_cues",
    "sample_veason_frames",
    "AksCandidate",
    "aks_candidates",
    "balance_aks",
    "build_ktg_record",
    "build_aks_record",
    "build_veason_record",
]

#: Reward used by a task's records unless one is given.
DEFAULT_REWARDS = {"ktg": "visionreasoner", "aks": "rcot_aks", "veason": "veason_r1"}


def task_rewards(task: str) -> tuple[str, ...]:
    """Rewards that score a task's records: each reward declares its tasks (``Reward.tasks``)."""
    from rewards.registry import task_rewards as declared  # imported on use: data does not need the rewards

    return declared(task)


# Exceptions a frame / mask loader raises for bad data (data.io's MissingFileError is an
# OSError, CorruptFileError and data.rle.RLEError are ValueErrors, unknown ids LookupErrors).
DATA_EXCEPTIONS = (OSError, ValueError, LookupError)


@dataclass(frozen=True)
class SampleOptions:
    """Parameters of the record builders (``from_data_config`` maps a ``DataConfig`` onto them)."""

    task: str = "ktg"
    # Model input size [W, H]; images are resized to it (aspect ignored) and GT is expressed in it.
    input_size: tuple[int, int] = (840, 840)
    # Reward name stored in the records; None = DEFAULT_REWARDS[task].
    reward: Optional[str] = None
    # KTG prompt / SFT target with a negative point per object; None = (reward == "videoseg_r1").
    negative_points: Optional[bool] = None
    # Max L1 distance (px, input size) of a GT negative point to its object (VideoSeg-R1 tau_neg).
    tau_neg: float = 40.0
    # "resized": cues from masks resized to input_size; "scaled": cues at original size, then scaled.
    cues_from: str = "resized"
    # Veason-R1: frames per sample and the top-k largest-area frames the keyframe is drawn from.
    num_sampled_frames: int = 6
    veason_keyframe_topk: int = 5
    seed: int = 0
    # "full" prompt templates or the one-line "compact" KTG prompt (tiny CPU models).
    prompt_style: str = "full"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ValueError(f"input_size must be [W, H] > 0, got {list(self.input_size)}")
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        if self.reward is not None and self.reward not in task_rewards(self.task):
            raise ValueError(
                f"reward {self.reward!r} does not fit task {self.task!r}; expected one of {task_rewards(self.task)}"
            )
        if self.cues_from not in ("resized", "scaled"):
            raise ValueError(f"cues_from must be 'resized' or 'scaled', got {self.cues_from!r}")
        if self.num_sampled_frames < 1 or self.veason_keyframe_topk < 1:
            raise ValueError("num_sampled_frames and veason_keyframe_topk must be >= 1")

    @property
    def reward_name(self) -> str:
        return self.reward or DEFAULT_REWARDS[self.task]

    @property
    def with_negative_points(self) -> bool:
        return self.reward_name == "videoseg_r1" if self.negative_points is None else bool(self.negative_points)

    @classmethod
    def from_data_config(cls, cfg: Any, reward: Optional[str] = None, **overrides: Any) -> "SampleOptions":
        """Options from a :class:`rl.config.DataConfig` (``task``, ``input_size``, Veason keys, ``seed``)."""
        return cls(
            task=cfg.task, input_size=tuple(cfg.input_size), reward=reward,
            num_sampled_frames=cfg.num_sampled_frames, veason_keyframe_topk=cfg.veason_keyframe_topk,
            seed=cfg.seed, prompt_style=getattr(cfg, "prompt_style", "full"), **overrides,
        )


class SampleSkip(Exception):
    """A record cannot be built from this data; ``reason`` is a short key, ``path`` the bad file if known.

    Reasons: ``frame_missing`` / ``frame_unreadable``, ``mask_missing`` / ``mask_unreadable``
    (corrupt file, broken RLE, wrong size), ``no_target`` (Veason-R1 needs a visible target).
    """

    def __init__(self, reason: str, message: str, path: Optional[str] = None):
        self.reason = reason
        self.path = path
        super().__init__(message)


def record_rng(seed: int, key: str) -> np.random.Generator:
    """Generator seeded by ``(seed, crc32(key))``: a record's draws do not depend on build order."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


# ------------------------------------------------------------------ loading helpers


def error_path(exc: BaseException) -> Optional[str]:
    path = getattr(exc, "path", None) or getattr(exc, "filename", None)
    return str(path) if path else None


def _reason(what: str, exc: BaseException) -> str:
    """Skip reason: ``<what>_missing`` for a missing file, else ``<what>_unreadable``."""
    return f"{what}_missing" if isinstance(exc, FileNotFoundError) else f"{what}_unreadable"


def _load_frame(sample: VideoSample, t: int) -> np.ndarray:
    """``H x W x 3`` uint8 frame ``t``; a bad file raises :class:`SampleSkip` naming it."""
    try:
        frame = sample.load_frame(t)
    except DATA_EXCEPTIONS as exc:
        path = error_path(exc) or str(sample.frame_paths[t])
        raise SampleSkip(_reason("frame", exc), f"{type(exc).__name__}: {exc}", path) from None
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise SampleSkip("frame_unreadable", f"frame has shape {frame.shape}, expected H x W x 3",
                         str(sample.frame_paths[t]))
    return frame


def _load_mask(sample: VideoSample, obj_id: str, t: int) -> np.ndarray:
    """``H x W`` bool mask of one object; bad data raises :class:`SampleSkip` naming the object/file."""
    where = f"video {sample.video_id!r} object {obj_id!r} frame {t}"
    try:
        mask = np.asarray(sample.object_mask(obj_id, t))
    except DATA_EXCEPTIONS as exc:
        raise SampleSkip(_reason("mask", exc), f"{where}: {type(exc).__name__}: {exc}", error_path(exc)) from None
    if mask.shape != (sample.height, sample.width):
        raise SampleSkip("mask_unreadable",
                         f"{where}: mask shape {mask.shape} != video size {(sample.height, sample.width)}")
    return mask.astype(bool, copy=False)


def expression_areas(sample: VideoSample) -> tuple[dict[str, np.ndarray], dict[str, SampleSkip]]:
    """Union target area per frame of every expression, loading each object mask once per frame.

    Returns ``({exp_id: T int64 areas at original size}, {exp_id: SampleSkip})``; an
    expression whose masks cannot be read lands in the second dict (with the path when
    the loader gave one), the others are unaffected. No-target expressions get zeros.
    """
    exps = sample.expressions
    areas = {e: np.zeros(sample.num_frames, dtype=np.int64) for e in exps}
    failed: dict[str, SampleSkip] = {}
    objects = sorted({o for e in exps.values() for o in e.obj_ids})
    for t in range(sample.num_frames):
        masks: dict[str, np.ndarray] = {}
        bad: dict[str, SampleSkip] = {}
        for obj in objects:
            if all(e in failed for e, x in exps.items() if obj in x.obj_ids):
                continue
            try:
                masks[obj] = _load_mask(sample, obj, t)
            except SampleSkip as skip:
                bad[obj] = skip
        for exp_id, exp in exps.items():
            if exp_id in failed or not exp.obj_ids:
                continue
            broken = [o for o in exp.obj_ids if o in bad]
            if broken:
                failed[exp_id] = bad[broken[0]]
                continue
            union = np.zeros((sample.height, sample.width), dtype=bool)
            for obj in exp.obj_ids:
                union |= masks[obj]
            areas[exp_id][t] = int(union.sum())
    return {e: a for e, a in areas.items() if e not in failed}, failed


# --------------------------------------------------------------------------- images


def _safe_part(text: str) -> str:
    part = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip(".")
    return part or "_"


class FrameImageWriter:
    """Writes model-input images ``<image_dir>/<dataset>/<video>/<frame>_<W>x<H>.png`` once per build."""

    def __init__(self, image_dir: str | Path):
        self.image_dir = Path(image_dir).resolve()
        self._written: set[Path] = set()

    def path_for(self, sample: VideoSample, t: int, size: Sequence[int]) -> Path:
        name = f"{_safe_part(sample.frame_names[t])}_{int(size[0])}x{int(size[1])}.png"
        return self.image_dir / _safe_part(sample.dataset) / _safe_part(sample.video_id) / name

    def write(self, sample: VideoSample, t: int, size: Sequence[int]) -> str:
        """Resize frame ``t`` to ``size`` ``[W, H]`` (bilinear), write it as PNG, return the absolute path."""
        from data.io import write_png

        path = self.path_for(sample, t, size)
        if path not in self._written:
            write_png(path, cues.resize_image(_load_frame(sample, t), size))
            self._written.add(path)
        return str(path)


# ---------------------------------------------------------------------------- cues


def object_cues(
    mask: np.ndarray,
    input_size: Sequence[int],
    cues_from: str = "resized",
) -> tuple[Optional[dict[str, list[int]]], np.ndarray]:
    """Box and point of one object mask, in input coordinates.

    mask: ``H x W`` at original resolution. Returns ``({"bbox_2d", "point_2d"} or None if
    the object is absent / vanishes at input size, resized mask size[1] x size[0] bool)``.
    """
    resized = cues.resize_mask(mask, input_size)
    if not resized.any():
        return None, resized
    if cues_from == "resized":
        box, point = cues.mask_to_box(resized), cues.inscribed_circle_point(resized)
    else:
        orig = [mask.shape[1], mask.shape[0]]
        box = cues.scale_box(cues.mask_to_box(mask), orig, input_size)
        point = cues.scale_point(cues.inscribed_circle_point(mask), orig, input_size)
    return {"bbox_2d": box, "point_2d": point}, resized


def _base_record(sample: VideoSample, exp_id: str, opts: SampleOptions, record_id: str) -> dict[str, Any]:
    exp = sample.expressions[exp_id]
    return {
        "id": record_id,
        "task": opts.task,
        "dataset": sample.dataset,
        "video_id": sample.video_id,
        "exp_id": exp_id,
        "query": exp.text,
        "type_id": int(exp.type_id),
        "num_targets": len(exp.obj_ids),
    }


def _record_id(sample: VideoSample, exp_id: str, task: str, suffix: str = "") -> str:
    return f"{sample.dataset}/{sample.video_id}/{exp_id}/{task}{suffix}"


def _frame_objects(
    sample: VideoSample, exp_id: str, t: int, opts: SampleOptions, rng: Optional[np.random.Generator]
) -> tuple[list[dict[str, Any]], list[np.ndarray], list[np.ndarray]]:
    """Cues of the expression's objects on frame ``t``: (objects present, their resized masks, all resized masks).

    With ``rng`` each present object gets a ``neg_point_2d`` (None if none can be placed).
    """
    exp = sample.expressions[exp_id]
    objects, present, all_resized = [], [], []
    for obj in exp.obj_ids:
        cue, resized = object_cues(_load_mask(sample, obj, t), opts.input_size, opts.cues_from)
        all_resized.append(resized)
        if cue is not None:
            objects.append(cue)
            present.append(resized)
    if rng is not None and objects:
        union = np.logical_or.reduce(present)
        for cue, resized in zip(objects, present):
            neg = cues.negative_points(resized, 1, opts.tau_neg, rng, avoid=union)
            cue["neg_point_2d"] = neg[0] if neg else None
    return objects, present, all_resized


# ------------------------------------------------------------------------------- KTG


def build_ktg_record(
    sample: VideoSample, exp_id: str, areas: np.ndarray, writer: FrameImageWriter, opts: SampleOptions
) -> dict[str, Any]:
    """KTG record of one expression (keyframe = largest union area). areas: ``T`` union areas."""
    rid = _record_id(sample, exp_id, "ktg")
    rng = record_rng(opts.seed, rid)
    exp = sample.expressions[exp_id]
    has_target = bool(exp.obj_ids) and int(np.max(areas)) > 0
    t = int(np.argmax(areas)) if has_target else int(rng.integers(sample.num_frames))
    objects, present, _ = _frame_objects(sample, exp_id, t, opts, rng) if has_target else ([], [], [])
    image = writer.write(sample, t, opts.input_size)
    neg = opts.with_negative_points
    record = _base_record(sample, exp_id, opts, rid)
    record.update({
        "images": [image],
        "frame_indices": [t],
        "orig_size": [sample.width, sample.height],
        "input_size": list(opts.input_size),
        "prompt": prompts.ktg_prompt(exp.text, opts.input_size, negative_points=neg, style=opts.prompt_style),
        "sft_target": prompts.ktg_sft_target(exp.text, objects, opts.input_size, negative_points=neg,
                                             style=opts.prompt_style),
        "reward": opts.reward_name,
        "ground_truth": {
            "objects": objects,
            "masks": [rle_codec.encode(m) for m in present],
            "image_path": image,
            "input_size": list(opts.input_size),
            "keyframe": t,
        },
    })
    return record


# ------------------------------------------------------------------------------- AKS


@dataclass(frozen=True)
class AksCandidate:
    """One possible AKS record: expression, frame and answer; ``multi`` = more than one target."""

    video_id: str
    exp_id: str
    frame_index: int
    answer: str
    multi: bool
    target_area: int = 0


def aks_candidates(sample: VideoSample, exp_id: str, areas: np.ndarray, seed: int) -> list[AksCandidate]:
    """A candidate (keyframe = largest area) and, if the target is absent somewhere, a B candidate.

    The B frame is drawn uniformly (seeded) among the zero-area frames. Expressions without
    any target area give no candidates (AKS asks whether the target is visible).
    """
    exp = sample.expressions[exp_id]
    if not exp.obj_ids or int(np.max(areas)) <= 0:
        return []
    multi = len(exp.obj_ids) > 1
    t_a = int(np.argmax(areas))
    out = [AksCandidate(sample.video_id, exp_id, t_a, "A", multi, int(areas[t_a]))]
    zero = np.flatnonzero(areas == 0)
    if zero.size:
        rng = record_rng(seed, _record_id(sample, exp_id, "aks", "/B"))
        out.append(AksCandidate(sample.video_id, exp_id, int(zero[rng.integers(zero.size)]), "B", multi, 0))
    return out


def _ratio_counts(n_single: int, n_multi: int, ratio: float) -> tuple[int, int]:
    """Largest (singles, multis) with singles:multis as close to ``ratio``:1 as the counts allow.

    If one kind is missing entirely the other is used alone (the ratio cannot be met).
    """
    if n_single == 0 or n_multi == 0 or ratio <= 0:
        return n_single, n_multi
    if n_single >= ratio * n_multi:
        return min(n_single, int(round(ratio * n_multi))), n_multi
    return n_single, min(n_multi, max(1, int(round(n_single / ratio))))


def balance_aks(
    candidates: Sequence[AksCandidate], single_to_multi_ratio: float, seed: int
) -> tuple[list[AksCandidate], list[AksCandidate]]:
    """Pick equally many A and B candidates with singles:multis = ``ratio``:1 in each class.

    Returns ``(a_list, b_list)`` of equal length, each shuffled (seeded). Build records by
    interleaving them (A, B, A, B, ...) so that any prefix stays balanced within one.
    """
    rng = np.random.default_rng([int(seed), 0xA45])
    pools = {(ans, multi): [c for c in candidates if c.answer == ans and c.multi == multi]
             for ans in ("A", "B") for multi in (False, True)}
    n_single = min(len(pools["A", False]), len(pools["B", False]))
    n_multi = min(len(pools["A", True]), len(pools["B", True]))
    k_single, k_multi = _ratio_counts(n_single, n_multi, single_to_multi_ratio)
    chosen: dict[str, list[AksCandidate]] = {}
    for ans in ("A", "B"):
        picked = []
        for multi, k in ((False, k_single), (True, k_multi)):
            pool = pools[ans, multi]
            idx = rng.permutation(len(pool))[:k]
            picked.extend(pool[i] for i in sorted(idx))
        chosen[ans] = [picked[i] for i in rng.permutation(len(picked))]
    return chosen["A"], chosen["B"]


def build_aks_record(
    sample: VideoSample, candidate: AksCandidate, writer: FrameImageWriter, opts: SampleOptions
) -> dict[str, Any]:
    """AKS record of one candidate: the candidate frame as the single image, answer A or B."""
    exp_id, t, answer = candidate.exp_id, candidate.frame_index, candidate.answer
    rid = _record_id(sample, exp_id, "aks", f"/{answer}")
    exp = sample.expressions[exp_id]
    boxes: list[list[int]] = []
    if answer == "A":
        objects, _, _ = _frame_objects(sample, exp_id, t, opts, None)
        boxes = [o["bbox_2d"] for o in objects]
    image = writer.write(sample, t, opts.input_size)
    record = _base_record(sample, exp_id, opts, rid)
    record.update({
        "images": [image],
        "frame_indices": [t],
        "orig_size": [sample.width, sample.height],
        "input_size": list(opts.input_size),
        "prompt": prompts.aks_prompt(exp.text),
        "sft_target": prompts.aks_sft_target(exp.text, answer, boxes, opts.input_size),
        "reward": opts.reward_name,
        "ground_truth": {"answer": answer, "frame_index": t, "target_area": int(candidate.target_area)},
    })
    return record


# ---------------------------------------------------------------------------- Veason


def sample_veason_frames(num_frames: int, anchor: int, n: int) -> list[int]:
    """``min(n, T)`` sorted distinct frame indices spread over the video, always containing ``anchor``.

    The video is cut into ``n`` equal segments ``[floor(i*T/n), floor((i+1)*T/n))``; the
    anchor's segment contributes the anchor, every other segment the frame at the same
    relative offset (clipped to the segment). ``T <= n`` gives every frame.
    """
    if not 0 <= anchor < num_frames:
        raise ValueError(f"anchor {anchor} outside 0..{num_frames - 1}")
    if num_frames <= n:
        return list(range(num_frames))
    bounds = [(i * num_frames) // n for i in range(n + 1)]
    seg = max(i for i in range(n) if bounds[i] <= anchor)
    offset = (anchor - bounds[seg]) / (bounds[seg + 1] - bounds[seg])
    frames = []
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        frames.append(anchor if i == seg else min(hi - 1, lo + int(offset * (hi - lo))))
    return frames


def build_veason_record(
    sample: VideoSample, exp_id: str, areas: np.ndarray, writer: FrameImageWriter, opts: SampleOptions
) -> dict[str, Any]:
    """Veason-R1 record: sampled frames, keyframe drawn from the top-k largest-area frames, boxes on it.

    The keyframe is drawn uniformly (seeded) from the ``veason_keyframe_topk`` frames of
    largest union area in the whole video (Veason-R1 public code), and the frames are
    sampled around it (:func:`sample_veason_frames`), so it is also among the top-k
    sampled frames. Raises :class:`SampleSkip` ``no_target`` when the target never appears.
    """
    rid = _record_id(sample, exp_id, "veason")
    exp = sample.expressions[exp_id]
    top = cues.top_k_frames(areas, opts.veason_keyframe_topk)
    if not exp.obj_ids or not top:
        raise SampleSkip("no_target", f"expression {exp_id!r} of video {sample.video_id!r} has no target area")
    rng = record_rng(opts.seed, rid)
    key = int(top[rng.integers(len(top))])
    frames = sample_veason_frames(sample.num_frames, key, opts.num_sampled_frames)
    paths, frame_areas, frame_boxes, frame_masks, masks_per_frame = [], [], [], [], []
    key_objects: list[dict[str, Any]] = []
    for t in frames:
        objects, present, all_resized = _frame_objects(sample, exp_id, t, opts, None)
        union = np.logical_or.reduce(all_resized) if all_resized else np.zeros(opts.input_size[::-1], bool)
        frame_areas.append(int(union.sum()))
        frame_boxes.append([o["bbox_2d"] for o in objects])
        frame_masks.append(rle_codec.encode(union))
        masks_per_frame.append([rle_codec.encode(m) for m in all_resized])
        paths.append(writer.write(sample, t, opts.input_size))
        if t == key:
            key_objects = [{"bbox_2d": o["bbox_2d"]} for o in objects]
    boxes = [o["bbox_2d"] for o in key_objects]
    record = _base_record(sample, exp_id, opts, rid)
    record.update({
        "images": paths,
        "frame_indices": frames,
        "orig_size": [sample.width, sample.height],
        "input_size": list(opts.input_size),
        "prompt": prompts.veason_prompt(exp.text, frames, opts.input_size),
        "sft_target": prompts.veason_sft_target(exp.text, key, boxes, opts.input_size),
        "reward": opts.reward_name,
        "ground_truth": {
            "frames": frames,
            "frame_areas": frame_areas,
            "keyframe": key,
            "objects": key_objects,
            "frame_boxes": frame_boxes,
            "frame_paths": paths,
            "frame_masks": frame_masks,
            "masks_per_frame": masks_per_frame,
            "input_size": list(opts.input_size),
        },
    })
    return record

