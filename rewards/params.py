"""Typed parameters of every reward (every constant of SPEC section 2 is one of these).

``rewards.compute(name, response, ground_truth, **params)`` builds the reward's
params dataclass from ``params`` (an unknown name is a ``TypeError`` naming it);
the training config carries one instance of each under ``reward.params.<name>``.

Conventions shared by all rewards:

* ``weight_*`` / ``lambda_*`` multiply one component each; the reward's score
  is the weighted sum of its components (VideoSeg-R1 multiplies the sum by the
  soft length factor).
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


@dataclass
class VisionReasonerParams:
    """VisionReasoner reward (max 7): think format 0/1 + answer format 0..2 + accuracy 0..3 + non-repeat 0/1."""

    iou_threshold: float = 0.5          # box IoU > this -> 1
    box_l1_threshold: float = 10.0      # mean |box diff| < this -> 1
    point_threshold: float = 30.0       # point distance < this (and point in its box) -> 1
    max_objects: int = 120              # lists are capped at this many items
    # Weights of the three per-pair accuracy sub-terms (accuracy max = their sum).
    alpha_iou: float = 1.0
    alpha_box: float = 1.0
    alpha_pt: float = 1.0
    # Non-repeat: 0 once this many repeated sentences were seen (reference code: 2).
    non_repeat_max_repeats: int = 2
    invalid_item_policy: str = "zero"   # zero | unmatched (see module docstring)
    strict_numeric_format: bool = False
    weight_think_format: float = 1.0
    weight_answer_format: float = 1.0
    weight_accuracy: float = 1.0
    weight_non_repeat: float = 1.0


@dataclass
class SegZeroStrictParams:
    """Seg-Zero's original strict reward (max 5): think format, answer format, box IoU, box L1, points.

    One object, answer JSON ``{"bbox": [x1,y1,x2,y2], "points_1": [x,y], "points_2": [x,y]}``
    (the first ``{...}`` in the response, as in the reference code).
    """

    iou_threshold: float = 0.5          # IoU > this -> 1 (intersection counted only when strictly overlapping)
    box_l1_threshold: float = 10.0      # mean |box diff| < this -> 1
    point_l1_threshold: float = 100.0   # mean distance of the best pairing of the two points < this -> 1
    weight_think_format: float = 1.0
    weight_answer_format: float = 1.0
    weight_iou: float = 1.0
    weight_box_l1: float = 1.0
    weight_points: float = 1.0


@dataclass
class RcotKtgParams:
    """RCoT-Seg keyframe target grounding (Eq. 8-12), max lambda_f*3 + lambda_a*3 = 6."""

    eta: float = 0.5
    gamma_box: float = 10.0
    gamma_pt: float = 30.0
    alpha_iou: float = 1.0
    alpha_box: float = 1.0
    alpha_pt: float = 1.0
    lambda_f: float = 1.0
    lambda_a: float = 1.0
    max_objects: int = 120
    invalid_item_policy: str = "zero"
    strict_numeric_format: bool = False


@dataclass
class RcotAksParams:
    """RCoT-Seg agentic keyframe selection: format 0/1 (lambda_f) + accuracy 0/1 (lambda_a=2), max 3."""

    lambda_f: float = 1.0
    lambda_a: float = 2.0
    options: list[str] = field(default_factory=lambda: ["A", "B"])


@dataclass
class VideoSegR1Params:
    """VideoSeg-R1: VisionReasoner reward + mask IoU through SAM2 + negative-point reward, times s(L).

    Max = base max (7) + weight_mask_iou + weight_negative_point = 9 with the defaults.
    Setting ``base.alpha_iou = 0`` makes the mask IoU replace the box IoU sub-term.
    """

    base: VisionReasonerParams = field(default_factory=VisionReasonerParams)
    weight_mask_iou: float = 1.0
    weight_negative_point: float = 1.0
    tau_neg: float = 40.0               # px; 0 < L1 distance to the GT masks <= tau_neg scores 1/K
    # Soft length penalty (unpublished constants; documented defaults).
    length_penalty: bool = True
    beta: float = 0.002                 # s = 1 - beta * (L_used - L_budget), clamped >= 0
    tau_easy: float = 4.0               # D < tau_easy -> easy
    tau_hard: float = 7.0               # D >= tau_hard -> hard
    budget_easy: int = 128              # reasoning-token budgets L(D) per difficulty level
    budget_medium: int = 256
    budget_hard: int = 384
    default_difficulty: float = 5.0     # used when the sample carries no difficulty


@dataclass
class VeasonR1Params:
    """Veason-R1 (public code): think 0/1 + answer format 0/1 + keyframe 0..1 + spatial 0..1 + temporal 0..1."""

    weight_think_format: float = 1.0
    weight_answer_format: float = 1.0
    weight_keyframe: float = 1.0
    weight_spatial: float = 1.0
    weight_temporal: float = 1.0
    max_objects: int = 120
    invalid_item_policy: str = "zero"
    strict_numeric_format: bool = False


@dataclass
class RewardParams:
    visionreasoner: VisionReasonerParams = field(default_factory=VisionReasonerParams)
    segzero_strict: SegZeroStrictParams = field(default_factory=SegZeroStrictParams)
    rcot_ktg: RcotKtgParams = field(default_factory=RcotKtgParams)
    rcot_aks: RcotAksParams = field(default_factory=RcotAksParams)
    videoseg_r1: VideoSegR1Params = field(default_factory=VideoSegR1Params)
    veason_r1: VeasonR1Params = field(default_factory=VeasonR1Params)
