"""VisionReasoner reward (VideoSeg-R1's "original reward"), max 7 with the defaults.

Components (docs/rewards.md#visionreasoner, matched to the VisionReasoner reference code):

* ``think_format`` 0/1: ``<think>...</think>\\s*<answer>...</answer>`` is the whole response;
* ``answer_format`` 0..2: per item of the answer list, +1 if ``bbox_2d`` is a
  list of 4 and +1 if ``point_2d`` is a list of 2, divided by the list length;
* ``accuracy`` 0..3: Hungarian-matched ``[IoU > 0.5] + [box L1 < 10] +
  [point distance < 30 and point in its box]`` / ``max(N_pred, N_gt)``, lists
  capped at 120 (:func:`rewards.grounding.grounding_accuracies`);
* ``non_repeat`` 0/1: 0 once two repeated '.'-sentences are seen.

Worked example (docs/rewards.md#visionreasoner): a GT object matched perfectly plus one extra
predicted object gives 1 + 2 + 3/2 + 1 = 5.5.
"""

from __future__ import annotations

import numpy as np

from rewards import gt as gt_mod
from rewards.grounding import GroundingGroup, grounding_accuracies, parse_grounding_group
from rewards.params import VisionReasonerParams
from rewards.parsing import non_repeat_score
from rewards.registry import GroupContext, Reward, Term, register_reward


def visionreasoner_terms(p: VisionReasonerParams) -> dict[str, Term]:
    """Weighted components of the VisionReasoner reward."""
    return {
        "think_format": Term(p.weight_think_format, 1.0),
        "answer_format": Term(p.weight_answer_format, 2.0),
        "accuracy": Term(p.weight_accuracy, p.alpha_iou + p.alpha_box + p.alpha_pt),
        "non_repeat": Term(p.weight_non_repeat, 1.0),
    }


def visionreasoner_group_components(
    responses: list[str], group: GroundingGroup, gt_boxes: np.ndarray, gt_points: np.ndarray,
    p: VisionReasonerParams,
) -> list[dict[str, float]]:
    """Raw components of each response of a group (see module docstring)."""
    accuracies = grounding_accuracies(
        group,
        gt_boxes,
        gt_points,
        (p.iou_threshold, p.box_l1_threshold, p.point_threshold),
        (p.alpha_iou, p.alpha_box, p.alpha_pt),
        p.invalid_item_policy,
        p.max_objects,
    )
    return [
        {
            "think_format": float(answer.think_ok),
            "answer_format": answer.format_box + answer.format_point,
            "accuracy": accuracy,
            "non_repeat": non_repeat_score(response, p.non_repeat_max_repeats),
        }
        for response, answer, accuracy in zip(responses, group.answers, accuracies)
    ]


@register_reward("visionreasoner")
class VisionReasonerReward(Reward):
    params_cls = VisionReasonerParams
    gt_keys = ("objects",)
    tasks = ("ktg",)

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        gt_mod.check_grounding(gt)

    def terms(self, params: VisionReasonerParams) -> dict[str, Term]:
        return visionreasoner_terms(params)

    def score_group(
        self, responses: list[str], gt: dict, params: VisionReasonerParams, ctx: GroupContext
    ) -> list[dict[str, float]]:
        gt_boxes, gt_points = gt_mod.objects(gt)
        group = parse_grounding_group(responses, params.max_objects, params.strict_numeric_format)
        return visionreasoner_group_components(responses, group, gt_boxes, gt_points, params)
