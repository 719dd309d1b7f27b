"""Dense grounding reward: the VisionReasoner reward plus a continuous localisation term.

The paper rewards score localisation with thresholds (IoU > 0.5, box L1 < 10 px,
point distance < 30 px), so a policy whose boxes are all far off gets the same 0
for every response of a group and GRPO sees no direction to move in. Small
policies (the CPU quickstart) and curricula need a graded signal. This reward
keeps every VisionReasoner component unchanged (``think_format``,
``answer_format``, the thresholded ``accuracy`` and ``non_repeat``, weighted by
``params.base``) and adds

* ``localization`` in [0, 1]: the Hungarian-matched mean over objects of the
  pair score ``(IoU + exp(-L1 / box_scale) + exp(-d / point_scale)) / 3``,
  divided by ``max(N_pred, N_gt)`` like the accuracy term (both lists empty: 1).
  IoU is the continuous box IoU, L1 the mean absolute box-coordinate difference
  and ``d`` the point distance, in input pixels. A cue that is missing or
  malformed contributes 0 to its part; a non-list answer scores 0.

At a distance equal to its scale a part is worth ``e^-1 ~ 0.37``; the defaults
use the VisionReasoner thresholds as scales. Max score = 7 + weight_localization.
"""

from __future__ import annotations

import numpy as np

from rewards import gt as gt_mod
from rewards.geometry import box_iou_matrix, box_l1_matrix, point_distance_matrix
from rewards.grounding import GroundingGroup, parse_grounding_group
from rewards.matching import matched_accuracy
from rewards.params import DenseGroundingParams
from rewards.parsing import ParsedItems
from rewards.registry import GroupContext, Reward, Term, register_reward
from rewards.visionreasoner import visionreasoner_group_components, visionreasoner_terms


def dense_pair_scores(pred: ParsedItems, gt_boxes: np.ndarray, gt_points: np.ndarray,
                      box_scale: float, point_scale: float) -> np.ndarray:
    """``M x N`` continuous pair scores in [0, 1] (see the module docstring); NaN cues give 0 parts."""
    with np.errstate(invalid="ignore", over="ignore"):
        iou = box_iou_matrix(pred.boxes, gt_boxes)
        box = np.exp(-box_l1_matrix(pred.boxes, gt_boxes) / float(box_scale))
        point = np.exp(-point_distance_matrix(pred.points, gt_points) / float(point_scale))
    parts = np.stack([iou, box, point])
    return np.nan_to_num(parts, nan=0.0).mean(axis=0)


def dense_localizations(group: GroundingGroup, gt_boxes: np.ndarray, gt_points: np.ndarray,
                        p: DenseGroundingParams) -> list[float]:
    """``localization`` of each parsed answer of one group, in [0, 1]."""
    cap = p.base.max_objects
    n_gt = gt_boxes.shape[0] if cap < 0 else min(gt_boxes.shape[0], cap)
    gt_boxes, gt_points = gt_boxes[:n_gt], gt_points[:n_gt]
    score = dense_pair_scores(group.stacked, gt_boxes, gt_points, p.box_scale, p.point_scale)
    out = []
    for i, answer in enumerate(group.answers):
        if not answer.is_list:
            out.append(0.0)
            continue
        rows = score[group.offsets[i]: group.offsets[i + 1]]
        out.append(matched_accuracy(rows, rows.shape[0], n_gt, 1.0))
    return out


@register_reward("dense_grounding")
class DenseGroundingReward(Reward):
    params_cls = DenseGroundingParams
    gt_keys = ("objects",)
    tasks = ("ktg",)

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        gt_mod.check_grounding(gt)

    def terms(self, params: DenseGroundingParams) -> dict[str, Term]:
        return {**visionreasoner_terms(params.base), "localization": Term(params.weight_localization, 1.0)}

    def score_group(self, responses: list[str], gt: dict, params: DenseGroundingParams,
                    ctx: GroupContext) -> list[dict[str, float]]:
        gt_boxes, gt_points = gt_mod.objects(gt)
        group = parse_grounding_group(responses, params.base.max_objects, params.base.strict_numeric_format)
        rows = visionreasoner_group_components(responses, group, gt_boxes, gt_points, params.base)
        for row, value in zip(rows, dense_localizations(group, gt_boxes, gt_points, params)):
            row["localization"] = value
        return rows
