"""Seg-Zero's original strict reward: 5 binary terms for one object, max 5 with the defaults.

Behaviour of the public Seg-Zero reference (``seg_strict_compute_score``):

* the answer is the **first** ``{...}`` without nested braces anywhere in the
  response (not only inside ``<answer>``), parsed with ``json.loads``;
* ``think_format``: the usual ``<think>...</think>\\s*<answer>...</answer>`` full match;
* ``answer_format``: keys ``bbox``, ``points_1``, ``points_2`` present, ``bbox`` a
  list of 4, each point a list of 2;
* ``iou``: IoU(bbox, GT box) > 0.5 with the +1-pixel convention, the
  intersection counted only when the boxes strictly overlap (``xA < xB``, ``yA < yB``);
* ``box_l1``: mean |bbox - GT box| < 10;
* ``points``: both points (truncated to int) inside the predicted box
  (inclusive) and the mean distance of the better pairing with the two GT
  points < 100.

Ground truth: ``{"objects": [{"bbox_2d": [...], "points": [[x, y], [x, y]]}]}``
(first object; without ``points`` its ``point_2d`` is used for both).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rewards import gt as gt_mod
from rewards.geometry import box_iou_matrix
from rewards.params import SegZeroStrictParams
from rewards.parsing import coerce_vector, is_list_of_len, parse_first_json_object, think_format_ok
from rewards.registry import GroupContext, Reward, Term, register_reward


def segzero_truth(gt: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """GT box ``4`` and points ``2 x 2`` of the first object."""
    items = gt.get("objects")
    if not isinstance(items, (list, tuple)) or not items or not isinstance(items[0], Mapping):
        raise gt_mod.GroundTruthError("ground truth 'objects' must be a non-empty list of dicts for segzero_strict")
    first = items[0]
    box = coerce_vector(first.get("bbox_2d"), 4)
    if box is None:
        raise gt_mod.GroundTruthError(f"ground truth 'objects[0].bbox_2d' must be 4 numbers, got {first.get('bbox_2d')!r}")
    if "points" in first:
        pts = first["points"]
        pair = [coerce_vector(v, 2) for v in pts] if isinstance(pts, (list, tuple)) and len(pts) == 2 else [None]
    else:
        point = coerce_vector(first.get("point_2d"), 2)
        pair = [point, point]
    if any(v is None for v in pair):
        raise gt_mod.GroundTruthError("ground truth 'objects[0].points' must be [[x, y], [x, y]] (or give point_2d)")
    return np.asarray(box), np.asarray(pair, dtype=np.float64)


def _truncated_point(value: Any) -> tuple[int, int] | None:
    vec = coerce_vector(value, 2)
    return None if vec is None else (math.trunc(vec[0]), math.trunc(vec[1]))


def _pair_distance(pred: list[tuple[int, int]], gt_points: np.ndarray) -> float:
    """Mean Euclidean distance of the better of the two pairings of 2 points with 2 points."""
    (a, b), (g, h) = pred, gt_points
    straight = math.dist(a, g) + math.dist(b, h)
    crossed = math.dist(a, h) + math.dist(b, g)
    return min(straight, crossed) / 2.0


def segzero_components(response: str, gt_box: np.ndarray, gt_points: np.ndarray, p: SegZeroStrictParams) -> dict[str, float]:
    """Raw 0/1 components of one response (see module docstring)."""
    data = parse_first_json_object(response) or {}
    fmt = (
        all(k in data for k in ("bbox", "points_1", "points_2"))
        and is_list_of_len(data.get("bbox"), 4)
        and is_list_of_len(data.get("points_1"), 2)
        and is_list_of_len(data.get("points_2"), 2)
    )
    box = coerce_vector(data.get("bbox"), 4)
    iou = box_l1 = points = False
    if box is not None:
        arr = np.asarray(box)
        iou = bool(box_iou_matrix(arr, gt_box, strict_overlap=True)[0, 0] > p.iou_threshold)
        with np.errstate(all="ignore"):
            box_l1 = bool(np.abs(arr - gt_box).mean() < p.box_l1_threshold)
        pair = [_truncated_point(data.get("points_1")), _truncated_point(data.get("points_2"))]
        if all(pt is not None for pt in pair):
            inside = all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in pair)
            points = inside and _pair_distance(pair, gt_points) < p.point_l1_threshold
    return {
        "think_format": float(think_format_ok(response)),
        "answer_format": float(fmt),
        "iou": float(iou),
        "box_l1": float(box_l1),
        "points": float(points),
    }


@register_reward("segzero_strict")
class SegZeroStrictReward(Reward):
    params_cls = SegZeroStrictParams
    gt_keys = ("objects",)
    tasks = ("ktg",)

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        gt_mod.check_grounding(gt, need_points=False)

    def terms(self, p: SegZeroStrictParams) -> dict[str, Term]:
        return {
            "think_format": Term(p.weight_think_format, 1.0),
            "answer_format": Term(p.weight_answer_format, 1.0),
            "iou": Term(p.weight_iou, 1.0),
            "box_l1": Term(p.weight_box_l1, 1.0),
            "points": Term(p.weight_points, 1.0),
        }

    def score_group(
        self, responses: list[str], gt: dict, params: SegZeroStrictParams, ctx: GroupContext
    ) -> list[dict[str, float]]:
        gt_box, gt_points = segzero_truth(gt)
        return [segzero_components(r, gt_box, gt_points, params) for r in responses]
