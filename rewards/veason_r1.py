"""Veason-R1 reward (public code ``video_match_keyframe_sft_sam_mod``), max 5 with the defaults.

Answer: ``<answer>{"keyframe_timestamp": int, "bbox_2d_list": [[x1,y1,x2,y2], ...]}</answer>``
(boxes on the chosen keyframe at input size, e.g. 560 x 560). Components:

* ``think_format`` 0/1: the usual ``<think>``/``<answer>`` full match;
* ``answer_format`` 0..1: the answer is a JSON object with an int
  ``keyframe_timestamp`` and a list ``bbox_2d_list``; each item that is a
  list of 4 numbers adds 1/n (n = list length; an empty list scores 0);
* ``keyframe`` 0..1: GT union-mask area of the chosen sampled frame / the
  largest area over the sampled frames (0 if the timestamp is not one of
  ``frames`` or every area is 0). An integral float timestamp is accepted;
  a bool or a string is not;
* ``spatial`` 0..1: continuous IoU (+1-pixel convention) between the predicted
  boxes and the GT boxes **of the chosen frame** (``frame_boxes[k]``; the
  ``objects`` boxes when the ground truth has no per-frame boxes), Hungarian on
  cost 1 - IoU: ``(matched - cost) / max(M, N)`` = matched IoU sum / max(M, N);
  both empty -> 1; 0 when the timestamp is invalid;
* ``temporal`` 0..1: the reference seeds SAM2's video predictor with the
  matched predicted boxes on the keyframe; here the segmenter segments the
  chosen keyframe from the matched boxes and the propagator carries the mask
  through the sampled frames (both directions); the score is the mean
  per-frame IoU against ``frame_masks`` (both empty -> 1). 0 when the
  timestamp is invalid.

Malformed boxes (:mod:`rewards.cues`: reversed, no pixel in the input image, or not 4
finite numbers) score 0 on every term: a parsed one is blanked (NaN, IoU 0) before the
spatial matching, so it is never a temporal seed and never reaches the segmenter; each is
counted in the per-response marker ``malformed_cues``.

Ground truth: see :mod:`rewards.gt`. The temporal term needs ``frame_paths``,
``frame_masks``, a segmenter and a propagator; otherwise it is 0 and the
marker ``temporal_available`` is 0.0 (a logged, counted skip). Batching per
GRPO group: frames are loaded once, the segmenter is called once per distinct
chosen keyframe, the propagator once per distinct (keyframe, mask).
``keyframe_valid`` (marker) is 1.0 when the timestamp is a sampled frame.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewards import gt as gt_mod
from rewards.cues import malformed_box_rows
from rewards.geometry import box_iou_matrix, mask_iou
from rewards.matching import hungarian_max
from rewards.params import VeasonR1Params
from rewards.parsing import cap, coerce_number, parse_answer_json, parse_boxes, think_format_ok
from rewards.registry import GroupContext, Reward, Term, register_reward
from rewards.vision.resolve import (
    load_rgb_resized,
    note_skip,
    object_prompt,
    resolve_propagator,
    resolve_segmenter,
    run_segmenter,
)


@dataclass(frozen=True)
class VeasonTruth:
    """Ground truth over the T sampled frames (see :mod:`rewards.gt`)."""

    frames: list[int]                       # T timestamps
    areas: np.ndarray                       # T GT areas
    boxes_per_frame: list[np.ndarray] | None  # T arrays N_t x 4
    keyframe_boxes: np.ndarray | None       # N x 4 ("objects")
    frame_paths: list[str] | None
    frame_masks: list[np.ndarray] | None    # T masks H x W
    size_wh: tuple[int, int] | None

    @classmethod
    def from_gt(cls, gt: dict, load_masks: bool = True) -> "VeasonTruth":
        frames = gt.get("frames")
        if not isinstance(frames, list) or not frames or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in frames
        ):
            raise gt_mod.GroundTruthError(f"ground truth 'frames' must be a non-empty list of ints, got {frames!r}")
        n = len(frames)
        size = gt_mod.input_size(gt)
        masks = None
        if load_masks and gt.get("frame_masks") is not None:
            rles = gt["frame_masks"]
            if not isinstance(rles, list) or len(rles) != n:
                raise gt_mod.GroundTruthError(f"ground truth 'frame_masks' must be a list of {n} COCO RLEs")
            masks = [gt_mod.decode_rle(r, f"frame_masks[{t}]") for t, r in enumerate(rles)]
            for t, m in enumerate(masks):
                gt_mod.check_shape(m, size or (masks[0].shape[1], masks[0].shape[0]), f"frame_masks[{t}]")
            size = size or (masks[0].shape[1], masks[0].shape[0])
        areas = cls._areas(gt, n, masks)
        per_frame = gt_mod.box_lists(gt["frame_boxes"], "frame_boxes") if gt.get("frame_boxes") is not None else None
        if per_frame is not None and len(per_frame) != n:
            raise gt_mod.GroundTruthError(f"ground truth 'frame_boxes' must have {n} entries (one per sampled frame)")
        key_boxes = gt_mod.objects(gt, need_points=False)[0] if gt.get("objects") is not None else None
        if per_frame is None and key_boxes is None:
            raise gt_mod.GroundTruthError("ground truth for 'veason_r1' needs 'frame_boxes' or 'objects'")
        paths = gt.get("frame_paths")
        if paths is not None and (not isinstance(paths, list) or len(paths) != n
                                  or not all(isinstance(x, str) for x in paths)):
            raise gt_mod.GroundTruthError(f"ground truth 'frame_paths' must be a list of {n} str paths")
        return cls(list(frames), areas, per_frame, key_boxes, paths, masks, size)

    @staticmethod
    def _areas(gt: dict, n: int, masks: list[np.ndarray] | None) -> np.ndarray:
        if gt.get("frame_areas") is not None:
            values = gt["frame_areas"]
            nums = [coerce_number(v) for v in values] if isinstance(values, list) else [None]
            if len(nums) != n or any(v is None or v < 0 for v in nums):
                raise gt_mod.GroundTruthError(f"ground truth 'frame_areas' must be {n} non-negative numbers")
            return np.asarray(nums, dtype=np.float64)
        if masks is not None:
            return np.asarray([np.count_nonzero(m) for m in masks], dtype=np.float64)
        raise gt_mod.GroundTruthError("ground truth for 'veason_r1' needs 'frame_areas' or 'frame_masks'")

    def boxes_for(self, index: int) -> np.ndarray:
        return self.boxes_per_frame[index] if self.boxes_per_frame is not None else self.keyframe_boxes


@dataclass(frozen=True)
class VeasonAnswer:
    """One parsed response: format pieces, chosen sampled-frame index (None if invalid), capped boxes."""

    think_ok: bool
    answer_format: float
    index: int | None
    boxes_ok: bool             # bbox_2d_list is a list
    boxes: np.ndarray          # M x 4 (NaN rows invalid)
    boxes_valid: np.ndarray    # M bool


def _format_box_ok(value: Any, strict: bool) -> bool:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return False
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return numeric and (not strict or all(coerce_number(v) is not None for v in value))


def _timestamp(value: Any) -> int | None:
    number = coerce_number(value)
    if number is None or number != math.floor(number):
        return None
    return int(number)


def parse_veason(response: str, truth: VeasonTruth, p: VeasonR1Params) -> VeasonAnswer:
    """Parse one response; never raises."""
    ok, data = parse_answer_json(response)
    fmt, index, boxes_ok = 0.0, None, False
    boxes, valid = np.zeros((0, 4)), np.zeros(0, dtype=bool)
    if ok and isinstance(data, dict):
        raw_ts, raw_boxes = data.get("keyframe_timestamp"), data.get("bbox_2d_list")
        if isinstance(raw_ts, int) and not isinstance(raw_ts, bool) and isinstance(raw_boxes, list) and raw_boxes:
            fmt = sum(_format_box_ok(b, p.strict_numeric_format) for b in raw_boxes) / len(raw_boxes)
        ts = _timestamp(raw_ts)
        if ts is not None and ts in truth.frames:
            index = truth.frames.index(ts)
        if isinstance(raw_boxes, list):
            boxes_ok = True
            boxes, valid = parse_boxes(cap(raw_boxes, p.max_objects))
    return VeasonAnswer(think_format_ok(response), fmt, index, boxes_ok, boxes, valid)


def spatial_match(answer: VeasonAnswer, gt_boxes: np.ndarray, p: VeasonR1Params) -> tuple[float, np.ndarray | None]:
    """(spatial score, matched valid predicted boxes ``K x 4``) on the chosen frame's GT boxes.

    The boxes are None (no temporal seed) when ``bbox_2d_list`` is not a list, or
    under ``invalid_item_policy="zero"`` when an item is malformed (both terms 0,
    as when the reference's numpy conversion raises).
    """
    if not answer.boxes_ok or (p.invalid_item_policy == "zero" and not np.all(answer.boxes_valid)):
        return 0.0, None
    gt_boxes = gt_boxes if p.max_objects < 0 else gt_boxes[: p.max_objects]
    m, n = answer.boxes.shape[0], gt_boxes.shape[0]
    if max(m, n) == 0:
        return 1.0, np.zeros((0, 4))
    rows, _, total = hungarian_max(box_iou_matrix(answer.boxes, gt_boxes))
    matched = answer.boxes[rows]
    return total / max(m, n), matched[np.isfinite(matched).all(axis=1)]


class _Temporal:
    """Temporal-consistency scoring of one group: shared frames, batched segmenter, deduplicated propagation."""

    def __init__(self, truth: VeasonTruth, ctx: GroupContext):
        self.truth = truth
        self.available = False
        if truth.frame_paths is None or truth.frame_masks is None:
            note_skip("veason_r1.temporal: ground truth lacks 'frame_paths' or 'frame_masks'")
            return
        self.segmenter = resolve_segmenter(ctx.segmenter, ctx.use_default_models)
        self.propagator = resolve_propagator(ctx.propagator, ctx.use_default_models)
        if self.segmenter is None or self.propagator is None:
            note_skip("veason_r1.temporal: no segmenter/propagator (pass them or provide rewards.vision.factory)")
            return
        self.available = True
        self._frames: np.ndarray | None = None

    def frames(self) -> np.ndarray:
        if self._frames is None:
            size = self.truth.size_wh
            self._frames = np.stack([load_rgb_resized(path, size) for path in self.truth.frame_paths])
        return self._frames

    def scores(self, requests: list[tuple[int, np.ndarray] | None]) -> list[float]:
        """requests: per response None (temporal 0) or (sampled-frame index, matched boxes K x 4)."""
        out = [0.0] * len(requests)
        by_index: dict[int, list[int]] = {}
        for i, req in enumerate(requests):
            if req is not None:
                by_index.setdefault(req[0], []).append(i)
        cache: dict[tuple[int, bytes], float] = {}
        size = self.truth.size_wh
        for index, members in by_index.items():
            prompt_sets = [[pr for b in requests[i][1] if (pr := object_prompt(b, None, None, size))] for i in members]
            if any(prompt_sets):
                masks = run_segmenter(self.segmenter, self.frames()[index], prompt_sets)
            else:
                masks = [np.zeros((size[1], size[0]), dtype=bool)] * len(members)
            for i, mask in zip(members, masks):
                key = (index, np.packbits(mask).tobytes())
                if key not in cache:
                    cache[key] = self._propagated_iou(index, mask)
                out[i] = cache[key]
        return out

    def _propagated_iou(self, index: int, mask: np.ndarray) -> float:
        gt = self.truth.frame_masks
        if not mask.any():
            video = np.zeros((len(gt),) + mask.shape, dtype=bool)
        else:
            video = np.asarray(self.propagator.propagate(self.frames(), index, mask), dtype=bool)
            if video.shape != (len(gt),) + mask.shape:
                raise ValueError(
                    f"propagator {type(self.propagator).__name__} returned {video.shape}, "
                    f"expected {(len(gt),) + mask.shape}"
                )
        return float(np.mean([mask_iou(video[t], gt[t]) for t in range(len(gt))]))


@register_reward("veason_r1")
class VeasonR1Reward(Reward):
    params_cls = VeasonR1Params
    gt_keys = ("frames",)
    tasks = ("veason",)
    needs_segmenter = True
    needs_propagator = True

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        VeasonTruth.from_gt(gt, load_masks=True)

    def terms(self, p: VeasonR1Params) -> dict[str, Term]:
        return {
            "think_format": Term(p.weight_think_format, 1.0),
            "answer_format": Term(p.weight_answer_format, 1.0),
            "keyframe": Term(p.weight_keyframe, 1.0),
            "spatial": Term(p.weight_spatial, 1.0),
            "temporal": Term(p.weight_temporal, 1.0),
        }

    def score_group(self, responses: list[str], gt: dict, p: VeasonR1Params, ctx: GroupContext) -> list[dict[str, float]]:
        truth = VeasonTruth.from_gt(gt)
        max_area = float(truth.areas.max())
        answers = [parse_veason(r, truth, p) for r in responses]
        out, requests = [], []
        for answer in answers:
            bad, malformed = malformed_box_rows(answer.boxes, answer.boxes_valid, truth.size_wh)
            if bad.any():
                answer = dataclasses.replace(answer, boxes=np.where(bad[:, None], np.nan, answer.boxes))
            keyframe = spatial = 0.0
            request = None
            if answer.index is not None:
                keyframe = float(np.clip(truth.areas[answer.index] / max_area, 0, 1)) if max_area > 0 else 0.0
                spatial, matched = spatial_match(answer, truth.boxes_for(answer.index), p)
                request = None if matched is None else (answer.index, matched)
            requests.append(request)
            out.append({
                "think_format": float(answer.think_ok),
                "answer_format": answer.answer_format,
                "keyframe": keyframe,
                "spatial": spatial,
                "keyframe_valid": float(answer.index is not None),
                "malformed_cues": float(malformed),
            })
        temporal = _Temporal(truth, ctx)
        scores = temporal.scores(requests) if temporal.available else [0.0] * len(out)
        for comps, score in zip(out, scores):
            comps["temporal"] = score
            comps["temporal_available"] = float(temporal.available)
        return out
