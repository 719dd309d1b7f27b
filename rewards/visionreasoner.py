"""VisionReasoner reward (VideoSeg-R1's "original reward"), max 7 with the defaults.

Components (SPEC section 2, matched to the VisionReasoner reference code):

* ``think_format`` 0/1: ``<think>...</think>\\s*<answer>...</answer>`` is the whole response;
* ``answer_format`` 0..2: per item of the answer list, +1 if ``bbox_2d`` is a
  list of 4 and +1 if ``point_2d`` is a list of 2, divided by the list length;
* ``accuracy`` 0..3: Hungarian-matched ``[IoU > 0.5] + [box L1 < 10] +
  [point distance < 30 and point in its box]`` / ``max(N_pred, N_gt)``, lists
  capped at 120 (:func:`rewards.grounding.grounding_accuracy`);
* ``non_repeat`` 0/1: 0 once two repeated '.'-sentences are seen.

Example (SPEC's worked example): a GT object matched perfectly plus one extra
predicted object gives 1 + 2 + 3/2 + 1 = 5.5.
"""

from __future__ import annotations

from rewards import gt as gt_mod
from rewards.grounding import GroundingAnswer, grounding_accuracy, parse_grounding
from rewards.params import VisionReasonerParams
from rewards.parsing import non_repeat_score
from rewards.registry import GroupContext, Reward, Term, register_reward

import numpy as np


def visionreasoner_terms(p: VisionReasonerParams) -> dict[str, Term]:
    """Weighted components of the VisionReasoner reward."""
    return {
        "think_format": Term(p.weight_think_format, 1.0),
        "answer_format": Term(p.weight_answer_format, 2.0),
        "accuracy": Term(p.weight_accuracy, p.alpha_iou + p.alpha_box + p.alpha_pt),
        "non_repeat": Term(p.weight_non_repeat, 1.0),
    }


def visionreasoner_components(
    response: str, answer: GroundingAnswer, gt_boxes: np.ndarray, gt_points: np.ndarray, p: VisionReasonerParams
) -> dict[str, float]:
    """Raw components of one response (see module docstring)."""
    accuracy = grounding_accuracy(
        answer,
        gt_boxes,
        gt_points,
        (p.iou_threshold, p.box_l1_threshold, p.point_threshold),
        (p.alpha_iou, p.alpha_box, p.alpha_pt),
        p.invalid_item_policy,
        p.max_objects,
    )
    return {
        "think_format": float(answer.think_ok),
        "answer_format": answer.format_box + answer.format_point,
        "accuracy": accuracy,
        "non_repeat": non_repeat_score(response, p.non_repeat_max_repeats),
    }


@register_reward("visionreasoner")
class VisionReasonerReward(Reward):
    params_cls = VisionReasonerParams

    def terms(self, params: VisionReasonerParams) -> dict[str, Term]:
        return visionreasoner_terms(params)

    def score_group(
        self, responses: list[str], gt: dict, params: VisionReasonerParams, ctx: GroupContext
    ) -> list[dict[str, float]]:
        gt_boxes, gt_points = gt_mod.objects(gt)
        out = []
        for response in responses:
            answer = parse_grounding(response, params.max_objects, params.strict_numeric_format)
            out.append(visionreasoner_components(response, answer, gt_boxes, gt_points, params))
        return out
