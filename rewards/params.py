"""Typed parameters of the built-in rewards (every constant of docs/rewards.md is one of these fields).

``rewards.compute(name, response, ground_truth, **params)`` builds the reward's
params dataclass from ``params`` (an unknown name is a ``TypeError`` naming it);
the training config carries one instance of each under ``reward.params.<name>``
(:data:`RewardParams`, derived from the rewards' ``params_cls`` declarations). A new
reward may define its params dataclass in its own module instead of here.

Conventions shared by all rewards:

* ``weight_*`` / ``lambda_*`` multiply one component each; the reward's score
  is the weighted sum of its components (VideoSeg-R1 multiplies part of the sum
  by the soft length factor).
* ``invalid_item_policy`` says what a malformed answer item (missing key,
  wrong length, non-numeric / NaN / inf / boolean coordinate, not a dict) does
  to the accuracy term: ``"zero"`` (default, the reference code's behaviour:
  its numpy conversion raises and the whole accuracy term is 0) or
  ``"unmatched"`` (the item stays in the prediction count but scores only the
  sub-terms whose inputs are valid).
* ``strict_numeric_format``: the reference answer-format check only tests
  "a list of 4" / "a list of 2"; ``True`` also requires finite numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

#: Values of every ``invalid_item_policy`` field (see the module docstring).
INVALID_ITEM_POLICIES = ("zero", "unmatched")


@dataclass
class VisionReasonerParams:
    """VisionReasoner reward (max 7): think format 0/1 + answer format 0..2 + accuracy 0..3 + non-repeat 0/1."""

    iou_threshold: float = 0.5          # box IoU > this -> 1
    box_l1_threshold: float = 10.0      # mean |box diff| < this -> 1
    point_threshold: float = 30.0       # point distance < this (and point in its box) -> 1
    max_objects: int = 120              # lists are capped at this many items
    alpha_iou: float = 1.0              # weight of the IoU sub-term of accuracy (accuracy max = sum of alphas)
    alpha_box: float = 1.0              # weight of the box-L1 sub-term of accuracy
    alpha_pt: float = 1.0               # weight of the point sub-term of accuracy
    non_repeat_max_repeats: int = 2     # non-repeat is 0 once this many repeated sentences are seen (reference: 2)
    invalid_item_policy: Literal[INVALID_ITEM_POLICIES] = "zero"   # zero | unmatched: what a malformed answer item does to accuracy
    strict_numeric_format: bool = False  # answer format also requires finite numbers (reference: list length only)
    weight_think_format: float = 1.0    # weight of the think-format component (0/1)
    weight_answer_format: float = 1.0   # weight of the answer-format component (0..2)
    weight_accuracy: float = 1.0        # weight of the Hungarian accuracy component (0..3)
    weight_non_repeat: float = 1.0      # weight of the non-repeat component (0/1)


@dataclass
class SegZeroStrictParams:
    """Seg-Zero's original strict reward (max 5): think format, answer format, box IoU, box L1, points.

    One object, answer JSON ``{"bbox": [x1,y1,x2,y2], "points_1": [x,y], "points_2": [x,y]}``
    (the first ``{...}`` in the response, as in the reference code).
    """

    iou_threshold: float = 0.5          # IoU > this -> 1 (intersection counted only when strictly overlapping)
    box_l1_threshold: float = 10.0      # mean |box diff| < this -> 1
    point_l1_threshold: float = 100.0   # mean distance of the better pairing of the two points < this -> 1
    weight_think_format: float = 1.0    # weight of the think-format term (0/1)
    weight_answer_format: float = 1.0   # weight of the answer-format term (0/1)
    weight_iou: float = 1.0             # weight of the box-IoU term (0/1)
    weight_box_l1: float = 1.0          # weight of the box-L1 term (0/1)
    weight_points: float = 1.0          # weight of the two-points term (0/1)


@dataclass
class RcotKtgParams:
    """RCoT-Seg keyframe target grounding (Eq. 8-12), max lambda_f*3 + lambda_a*3 = 6."""

    eta: float = 0.5                    # S_iou = IoU > eta
    gamma_box: float = 10.0             # S_box = mean box L1 < gamma_box
    gamma_pt: float = 30.0              # S_pt = point distance < gamma_pt and point in its box
    alpha_iou: float = 1.0              # weight of S_iou in S (Eq. 11)
    alpha_box: float = 1.0              # weight of S_box in S
    alpha_pt: float = 1.0               # weight of S_pt in S
    lambda_f: float = 1.0               # weight of the format reward (structure + boxes + points, max 3)
    lambda_a: float = 1.0               # weight of the accuracy reward (max alpha_iou + alpha_box + alpha_pt)
    max_objects: int = 120              # lists are capped at this many items
    invalid_item_policy: Literal[INVALID_ITEM_POLICIES] = "zero"   # zero | unmatched: what a malformed answer item does to accuracy
    strict_numeric_format: bool = False  # format also requires finite numbers (reference: list length only)


@dataclass
class RcotAksParams:
    """RCoT-Seg agentic keyframe selection: format 0/1 (lambda_f) + accuracy 0/1 (lambda_a=2), max 3."""

    lambda_f: float = 1.0               # weight of the format reward (think/answer, answer is one option)
    lambda_a: float = 2.0               # weight of the accuracy reward (answer == GT option)
    options: list[str] = field(default_factory=lambda: ["A", "B"])  # A = valid keyframe, B = reselect


def videoseg_r1_base() -> VisionReasonerParams:
    """VideoSeg-R1's default original-reward params: the box-IoU sub-term off (``alpha_iou = 0``), because
    the paper's segmentation accuracy is mask IoU + point L1 + box L1 (the mask IoU takes its place)."""
    return VisionReasonerParams(alpha_iou=0.0)


@dataclass
class VideoSegR1Params:
    """VideoSeg-R1 (Eq. 5-8): s(L) * (format + segmentation accuracy + non-repeat) + negative point.

    Segmentation accuracy = the Hungarian box-L1 + point sub-terms of ``base`` (max 2) + the mask IoU
    through SAM2 (max 1). Max = 1 + 2 + 2 + 1 + weight_mask_iou + weight_negative_point = 8 with the
    defaults. Earlier behaviour (max 9): ``base.alpha_iou = 1`` keeps the box-IoU sub-term next to the
    mask IoU, and ``length_scale_negative_point = true`` scales the negative-point term by s(L) too.
    """

    base: VisionReasonerParams = field(default_factory=videoseg_r1_base)
    weight_mask_iou: float = 1.0        # weight of the keyframe mask IoU through the segmenter (0..1)
    weight_negative_point: float = 1.0  # weight of the negative-point reward (0..1)
    length_scale_negative_point: bool = False  # also scale the negative-point term by s(L) (Eq. 8 scales only R_original)
    tau_neg: float = 40.0               # px; 0 < L1 distance to the GT masks <= tau_neg scores 1/K
    length_penalty: bool = True         # apply the soft length penalty (unpublished constants below)
    beta: float = 0.002                 # s = 1 - beta * (L_used - L_budget), clamped to [0, 1]
    tau_easy: float = 4.0               # D < tau_easy -> easy
    tau_hard: float = 7.0               # D >= tau_hard -> hard
    budget_easy: int = 128              # reasoning-token budget L(D) of easy samples
    budget_medium: int = 256            # reasoning-token budget L(D) of medium samples
    budget_hard: int = 384              # reasoning-token budget L(D) of hard samples
    default_difficulty: float = 5.0     # used when the sample carries no difficulty


@dataclass
class VeasonR1Params:
    """Veason-R1 (public code): think 0/1 + answer format 0/1 + keyframe 0..1 + spatial 0..1 + temporal 0..1."""

    weight_think_format: float = 1.0    # weight of the think-format component (0/1)
    weight_answer_format: float = 1.0   # weight of the answer-format component (0..1)
    weight_keyframe: float = 1.0        # weight of the keyframe area-ratio component (0..1)
    weight_spatial: float = 1.0         # weight of the continuous-IoU Hungarian component (0..1)
    weight_temporal: float = 1.0        # weight of the propagated mask IoU component (0..1)
    max_objects: int = 120              # box lists are capped at this many items
    invalid_item_policy: Literal[INVALID_ITEM_POLICIES] = "zero"   # zero | unmatched: what a malformed box does to spatial/temporal
    strict_numeric_format: bool = False  # format also requires finite numbers (reference: number types only)


@dataclass
class DenseGroundingParams:
    """Dense grounding (not a paper reward): VisionReasoner's components + a continuous localisation term.

    Max = base max (7) + weight_localization (see :mod:`rewards.dense_grounding`).
    """

    base: VisionReasonerParams = field(default_factory=VisionReasonerParams)
    weight_localization: float = 3.0    # weight of the continuous localisation component (0..1)
    box_scale: float = 10.0             # px; the box part is exp(-box L1 / box_scale)
    point_scale: float = 30.0           # px; the point part is exp(-point distance / point_scale)


if TYPE_CHECKING:  # the real class is derived from the registry on first use (see __getattr__)

    class RewardParams:
        """One params dataclass per built-in reward: ``reward.params.<name>`` in the run config."""


def __getattr__(name: str) -> Any:
    """``RewardParams``: a dataclass with one field per built-in reward, named after it, holding its
    ``params_cls`` with defaults (in :func:`rewards.registry.reward_names` order). Derived on
    first use because the reward modules import the params classes above."""
    if name != "RewardParams":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rewards.param_builder import params_union
    from rewards.registry import builtin_params

    cls = params_union("RewardParams", builtin_params(), module=__name__,
                       doc="One params dataclass per built-in reward: ``reward.params.<name>`` in the run config.")
    globals()["RewardParams"] = cls   # one class object per process (pickling looks it up by name)
    return cls
