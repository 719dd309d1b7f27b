"""RCoT-Seg rewards: keyframe target grounding (KTG) and agentic keyframe selection (AKS).

KTG (Eq. 8-13, Appendix A), ``R = lambda_f * R_f + lambda_a * R_a``, max 6:

* ``R_f`` up to 3.0 = ``format_structure`` (``<think>``/``<answer>`` full match, 0/1)
  + ``format_boxes`` (fraction of answer items whose ``bbox_2d`` is a list of 4)
  + ``format_points`` (fraction whose ``point_2d`` is a list of 2);
* ``R_a`` = ``accuracy`` up to ``alpha_iou + alpha_box + alpha_pt`` = 3.0: the
  Hungarian-matched binary scores of :mod:`rewards.matching` (eta, gamma_box, gamma_pt).

AKS, max ``lambda_f + lambda_a`` = 3:

* ``format`` 0/1: the think/answer full match AND the answer (stripped) is
  exactly one of ``options``;
* ``accuracy`` 0/1: the answer equals the GT option (``{"answer": "A"}``;
  A = valid keyframe, B = not).
"""

from __future__ import annotations

from rewards import gt as gt_mod
from rewards.grounding import grounding_accuracies, parse_grounding_group
from rewards.params import RcotAksParams, RcotKtgParams
from rewards.parsing import extract_answer, think_format_ok
from rewards.registry import GroupContext, Reward, Term, register_reward


@register_reward("rcot_ktg")
class RcotKtgReward(Reward):
    params_cls = RcotKtgParams
    gt_keys = ("objects",)
    tasks = ("ktg",)

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        gt_mod.check_grounding(gt)

    def terms(self, p: RcotKtgParams) -> dict[str, Term]:
        return {
            "format_structure": Term(p.lambda_f, 1.0),
            "format_boxes": Term(p.lambda_f, 1.0),
            "format_points": Term(p.lambda_f, 1.0),
            "accuracy": Term(p.lambda_a, p.alpha_iou + p.alpha_box + p.alpha_pt),
        }

    def score_group(self, responses: list[str], gt: dict, p: RcotKtgParams, ctx: GroupContext) -> list[dict[str, float]]:
        gt_boxes, gt_points = gt_mod.objects(gt)
        group = parse_grounding_group(responses, p.max_objects, p.strict_numeric_format)
        accuracies = grounding_accuracies(
            group, gt_boxes, gt_points, (p.eta, p.gamma_box, p.gamma_pt),
            (p.alpha_iou, p.alpha_box, p.alpha_pt), p.invalid_item_policy, p.max_objects,
        )
        return [
            {
                "format_structure": float(answer.think_ok),
                "format_boxes": answer.format_box,
                "format_points": answer.format_point,
                "accuracy": accuracy,
            }
            for answer, accuracy in zip(group.answers, accuracies)
        ]


def aks_truth(gt: dict, options: list[str]) -> str:
    """The GT option, checked against ``options``."""
    answer = gt.get("answer")
    if not isinstance(answer, str) or answer.strip() not in options:
        raise gt_mod.GroundTruthError(f"ground truth 'answer' must be one of {options}, got {answer!r}")
    return answer.strip()


@register_reward("rcot_aks")
class RcotAksReward(Reward):
    params_cls = RcotAksParams
    gt_keys = ("answer",)
    tasks = ("aks",)

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        if not isinstance(gt["answer"], str):
            raise gt_mod.GroundTruthError("ground truth 'answer' must be a str such as 'A'", key="answer")

    def terms(self, p: RcotAksParams) -> dict[str, Term]:
        return {"format": Term(p.lambda_f, 1.0), "accuracy": Term(p.lambda_a, 1.0)}

    def score_group(self, responses: list[str], gt: dict, p: RcotAksParams, ctx: GroupContext) -> list[dict[str, float]]:
        truth = aks_truth(gt, p.options)
        out = []
        for response in responses:
            answer = extract_answer(response)
            is_option = answer is not None and answer in p.options
            out.append({
                "format": float(is_option and think_format_ok(response)),
                "accuracy": float(answer is not None and answer == truth),
            })
        return out
