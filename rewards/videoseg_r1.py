"""VideoSeg-R1 reward (Eq. 5-8): the original reward times a soft length factor, plus the negative-point reward.

``score = length_scale * (think_format + answer_format + accuracy + non_repeat
+ w_mask * mask_iou) + w_neg * negative_point``; max 8 with the defaults.

* Base terms: :mod:`rewards.visionreasoner` with ``params.base``. The paper's segmentation
  accuracy is mask IoU + point L1 + box L1, so ``base.alpha_iou`` defaults to 0 here and
  ``accuracy`` (0..2) holds the box-L1 and point sub-terms; ``mask_iou`` is the third.
  ``base.alpha_iou = 1`` keeps the box-IoU sub-term as well (the earlier behaviour, max 9).
* Eq. 8 scales R_original (format + segmentation accuracy + non-repeat) by the length
  factor; the paper says nothing of the negative-point term there, so it is added outside
  the factor unless ``length_scale_negative_point`` (the earlier behaviour: every term scaled).
* ``mask_iou`` 0..1: the segmenter is prompted on the keyframe (``image_path``
  resized to the input size) with each answer item's cues (box, ``point_2d``
  positive, ``neg_point_2d`` negative); the IoU of the union mask vs the GT
  union mask (both empty -> 1). One ``segment`` call scores all n responses of
  a group (the image is encoded once); none when no response yields a cue.
* ``negative_point`` 0..1: K = number of answer items (after capping) that
  carry ``"neg_point_2d"``; each whose minimum **L1** (city-block) distance d
  to the GT masks satisfies ``0 < d <= tau_neg`` adds 1/K; a malformed one, or
  one inside/on the mask (d = 0) adds 0; K = 0 gives 0. The VideoSeg-R1
  paper ("Negative Point Distance Reward") specifies the L1 distance
  (docs/rewards.md#videoseg-r1). Points are rounded to the nearest pixel; a point outside
  the image is malformed and adds 0.
* Malformed cues (:mod:`rewards.cues`): a box that is non-finite, reversed or has no
  pixel in the image, a point that is non-finite or outside the image, scores 0 on every
  term: its row is blanked (NaN) before the accuracy term, it is not given to the
  segmenter (an item with a malformed box is not prompted: its object's mask is empty),
  and it is counted in the marker ``malformed_cues`` (per response).
* ``length_scale`` (Eq. 7-8): ``s = 1 - beta * (L_used - L_budget)`` when
  ``L_used > L_budget`` else 1, clamped to [0, 1]. ``L_budget`` = budget_easy /
  budget_medium / budget_hard for ``D < tau_easy`` / between / ``D >= tau_hard``
  (D = the sample's ``difficulty``, else ``default_difficulty``). ``L_used`` =
  the caller's ``think_tokens`` (reasoning tokens), else its
  ``response_length`` (whole-response tokens, an over-estimate), else the
  whitespace-token count of the ``<think>`` content (0 without a ``<think>``).

Availability markers (never weighted): ``mask_iou_available`` is 0.0 when the
ground truth lacks ``masks`` or ``image_path`` or no segmenter is available
(``mask_iou`` is then 0); ``negative_point_available`` is 0.0 without
``masks``. Informational: ``reasoning_tokens``, ``token_budget``, ``difficulty``,
``malformed_cues``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rewards import gt as gt_mod
from rewards.cues import answer_cues, blank_malformed
from rewards.geometry import l1_distance_to_mask, l1_distance_transform, mask_iou
from rewards.grounding import GroundingAnswer, parse_grounding_group
from rewards.params import VideoSegR1Params
from rewards.parsing import NEG_POINT_KEY, coerce_vector, extract_think, whitespace_tokens
from rewards.registry import GroupContext, Reward, Term, register_reward
from rewards.vision.base import ObjectPrompt
from rewards.vision.prompts import point_defect
from rewards.vision.resolve import load_rgb_resized, note_skip, resolve_segmenter, run_segmenter
from rewards.visionreasoner import visionreasoner_group_components, visionreasoner_terms


@dataclass(frozen=True)
class MaskTruth:
    """GT union mask ``H x W`` (None without ``masks``), its L1 distance transform, input size, image path."""

    union: np.ndarray | None
    transform: np.ndarray | None
    size_wh: tuple[int, int] | None
    image_path: str | None

    @classmethod
    def from_gt(cls, gt: dict) -> "MaskTruth":
        size = gt_mod.input_size(gt)
        union = transform = None
        if gt.get("masks") is not None:
            union = gt_mod.union_of_rles(gt["masks"], "masks", None if size is None else (size[1], size[0]))
            gt_mod.check_shape(union, size, "masks")
            size = size or (union.shape[1], union.shape[0])
            transform = l1_distance_transform(union) if union.any() else None
        path = gt.get("image_path")
        if path is not None and not isinstance(path, str):
            raise gt_mod.GroundTruthError(f"ground truth 'image_path' must be a str, got {path!r}")
        return cls(union, transform, size, path or None)


def negative_points(answer: GroundingAnswer) -> tuple[int, np.ndarray]:
    """K (items carrying ``neg_point_2d``) and their points ``K x 2`` (NaN rows if malformed)."""
    raw = [item[NEG_POINT_KEY] for item in answer.items if isinstance(item, dict) and NEG_POINT_KEY in item]
    pts = np.full((len(raw), 2), np.nan)
    for i, value in enumerate(raw):
        vec = coerce_vector(value, 2)
        if vec is not None:
            pts[i] = vec
    return len(raw), pts


def negative_point_score(answer: GroundingAnswer, truth: MaskTruth, tau_neg: float) -> float:
    """Fraction of negative points with ``0 < L1 distance to the GT union <= tau_neg`` (malformed ones,
    non-finite or outside the image, add 0)."""
    k, pts = negative_points(answer)
    if k == 0 or truth.union is None:
        return 0.0
    h, w = truth.union.shape
    pts[[point_defect(pt, h, w) is not None for pt in pts]] = np.nan
    d = l1_distance_to_mask(pts, truth.union, truth.transform)
    with np.errstate(invalid="ignore"):
        good = (d > 0) & (d <= tau_neg)
    return float(np.count_nonzero(good)) / k


def difficulty_level(difficulty: float, tau_easy: float, tau_hard: float) -> str:
    """``"easy"`` (D < tau_easy), ``"hard"`` (D >= tau_hard), else ``"medium"`` (easy is tested first)."""
    if difficulty < tau_easy:
        return "easy"
    if difficulty >= tau_hard:
        return "hard"
    return "medium"


def token_budget(difficulty: float, p: VideoSegR1Params) -> int:
    """L(D): the budget of the difficulty level of D (:func:`difficulty_level`)."""
    level = difficulty_level(difficulty, p.tau_easy, p.tau_hard)
    return {"easy": p.budget_easy, "medium": p.budget_medium, "hard": p.budget_hard}[level]


def length_scale(used: float, budget: float, p: VideoSegR1Params) -> float:
    """Soft length factor s in [0, 1] (Eq. 7)."""
    if not p.length_penalty or used <= budget:
        return 1.0
    return float(min(1.0, max(0.0, 1.0 - p.beta * (used - budget))))


def _token_count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise TypeError(f"'{name}' must be a non-negative int per response, got {value!r}")
    return int(value)


def reasoning_tokens(response: str, think_tokens: Any, response_length: Any) -> int:
    """L_used: caller's reasoning tokens, else its response length, else whitespace tokens of <think>."""
    for value, name in ((think_tokens, "think_tokens"), (response_length, "response_length")):
        count = _token_count(value, name)
        if count is not None:
            return count
    return whitespace_tokens(extract_think(response))


def _mask_ious(prompt_sets: list[list[ObjectPrompt]], truth: MaskTruth, ctx: GroupContext) -> list[float] | None:
    """Mask IoU per response (its prompts, malformed cues left out) with one segmenter call, or None
    when unavailable (counted skip)."""
    if truth.union is None:
        note_skip("videoseg_r1.mask_iou: ground truth has no 'masks'")
        return None
    if truth.image_path is None:
        note_skip("videoseg_r1.mask_iou: ground truth has no 'image_path'")
        return None
    segmenter = resolve_segmenter(ctx.segmenter, ctx.use_default_models)
    if segmenter is None:
        note_skip("videoseg_r1.mask_iou: no segmenter (pass one or provide rewards.vision.factory)")
        return None
    if not any(prompt_sets):
        empty = np.zeros_like(truth.union)
        return [mask_iou(empty, truth.union)] * len(prompt_sets)
    image = load_rgb_resized(truth.image_path, truth.size_wh)
    masks = run_segmenter(segmenter, image, prompt_sets)
    return [mask_iou(m, truth.union) for m in masks]


@register_reward("videoseg_r1")
class VideoSegR1Reward(Reward):
    params_cls = VideoSegR1Params
    multiplier = "length_scale"
    gt_keys = ("objects",)
    tasks = ("ktg",)
    needs_segmenter = True

    def check_ground_truth(self, gt: dict) -> None:
        super().check_ground_truth(gt)
        gt_mod.check_grounding(gt)
        gt_mod.difficulty(gt, 0.0)
        if "masks" in gt:
            size = gt_mod.input_size(gt)
            union = gt_mod.union_of_rles(gt["masks"], "masks", None if size is None else (size[1], size[0]))
            gt_mod.check_shape(union, size, "masks")

    def terms(self, p: VideoSegR1Params) -> dict[str, Term]:
        terms = visionreasoner_terms(p.base)
        terms["mask_iou"] = Term(p.weight_mask_iou, 1.0)
        terms["negative_point"] = Term(p.weight_negative_point, 1.0)
        return terms

    def unscaled_terms(self, p: VideoSegR1Params) -> frozenset[str]:
        """The negative-point term stays outside the length factor (Eq. 8) unless ``length_scale_negative_point``."""
        return frozenset() if p.length_scale_negative_point else frozenset({"negative_point"})

    def score_group(self, responses: list[str], gt: dict, p: VideoSegR1Params, ctx: GroupContext) -> list[dict[str, float]]:
        gt_boxes, gt_points = gt_mod.objects(gt)
        truth = MaskTruth.from_gt(gt)
        difficulty = gt_mod.difficulty(gt, p.default_difficulty)
        budget = token_budget(difficulty, p)
        group = parse_grounding_group(responses, p.base.max_objects, p.base.strict_numeric_format)
        answers = group.answers
        cues = [answer_cues(a, truth.size_wh) for a in answers]
        ious = _mask_ious([c.prompts for c in cues], truth, ctx)
        out = visionreasoner_group_components(responses, blank_malformed(group, cues), gt_boxes, gt_points, p.base)
        for i, (response, answer, comps) in enumerate(zip(responses, answers, out)):
            used = reasoning_tokens(response, ctx.think_tokens[i], ctx.response_lengths[i])
            comps.update({
                "mask_iou": 0.0 if ious is None else ious[i],
                "negative_point": negative_point_score(answer, truth, p.tau_neg),
                "length_scale": length_scale(used, budget, p),
                "mask_iou_available": float(ious is not None),
                "negative_point_available": float(truth.union is not None),
                "malformed_cues": float(cues[i].malformed),
                "reasoning_tokens": float(used),
                "token_budget": float(budget),
                "difficulty": difficulty,
            })
        return out
