"""Keyframe grounding (policy or GT cues) and keyframe segmentation.

Grounding asks the policy the KTG question (``data.prompts.ktg_prompt``) on the keyframe
resized to the policy's input size ``[W, H]`` (``data.input_size``); the answer is parsed
with ``rewards.parsing`` (first ``<answer>`` block, ``json.loads``, per item ``bbox_2d`` /
``point_2d`` / ``neg_point_2d``, list capped at 120 items) and the cues are mapped back to
the original resolution with ``data.cues.scale_box`` / ``scale_point`` (the
``int(v * f + 0.5)`` rule with the sizes swapped). Grounding outcomes
(:attr:`Grounding.status`): ``ok``; ``empty`` (the model answered ``[]``: no target);
``malformed`` (no answer block, not a JSON list, or no item with a usable box or point:
no cues, so an empty mask; counted); ``oracle`` (GT cues); ``sampler`` (boxes of the
sampler's own answer, Veason-R1).

Oracle cues (``eval.oracle_cues``): per object present on the keyframe, the box of its
GT mask's extreme pixels and the centre of its maximum inscribed circle
(``data.cues.mask_to_box`` / ``inscribed_circle_point``), at the original resolution.

The segmenter (``rewards.vision``) turns each expression's cues into one mask
(objects OR'd); expressions sharing a keyframe image are segmented in one call, so the
image is encoded once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from data.cues import inscribed_circle_point, mask_to_box, scale_box, scale_point
from data.prompts import ktg_prompt
from rewards.matching import hungarian_max
from rewards.parsing import NEG_POINT_KEY, as_text, cap, parse_answer_json, parse_items
from rewards.vision.base import ObjectPrompt, Segmenter
from rl.eval.metrics import box_iou

__all__ = [
    "MAX_OBJECTS", "ObjectCue", "Grounding", "GroundingRequest", "GroundingStage", "oracle_cues",
    "parse_grounding", "grounding_prompt", "cue_prompts", "segment_keyframe", "box_iou_before_segmentation",
]

#: Items read from one answer (the rewards' cap).
MAX_OBJECTS = 120
OK, EMPTY, MALFORMED, ORACLE, SAMPLER = "ok", "empty", "malformed", "oracle", "sampler"


@dataclass(frozen=True)
class ObjectCue:
    """Cues of one object at the original resolution (None where absent)."""

    box: Optional[tuple[float, float, float, float]] = None
    point: Optional[tuple[float, float]] = None
    neg_point: Optional[tuple[float, float]] = None


@dataclass
class Grounding:
    """Objects found on the keyframe, how they were obtained, and the raw response (if any)."""

    objects: list[ObjectCue]
    status: str
    response: Optional[str] = None

    @property
    def boxes(self) -> np.ndarray:
        """``M x 4`` float boxes of the objects that have one."""
        rows = [o.box for o in self.objects if o.box is not None]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


@dataclass
class GroundingRequest:
    """One KTG question.

    query: expression text; keyframe_image: path of the keyframe resized to the input size;
    orig_size: original ``[W, H]``; reference_images: context frames shown before the
    keyframe (same size); description: RCoT-Seg video description.
    """

    query: str
    keyframe_image: str
    orig_size: tuple[int, int]
    reference_images: list[str] = field(default_factory=list)
    description: Optional[str] = None


def oracle_cues(object_masks: Sequence[np.ndarray]) -> Grounding:
    """GT cues from per-object ``H x W`` masks on the keyframe (objects absent there are skipped)."""
    objects = []
    for mask in object_masks:
        box = mask_to_box(mask)
        if box is None:
            continue
        point = inscribed_circle_point(mask)
        objects.append(ObjectCue(box=tuple(float(v) for v in box), point=tuple(float(v) for v in point)))
    return Grounding(objects, ORACLE)


def parse_grounding(response: Any, input_size: Sequence[int], orig_size: Sequence[int]) -> Grounding:
    """KTG answer -> cues at the original resolution (never raises; see the module doc for statuses)."""
    text = as_text(response)
    ok, data = parse_answer_json(text)
    if ok and isinstance(data, dict):
        data = [data]
    if not ok or not isinstance(data, list):
        return Grounding([], MALFORMED, text)
    if not data:
        return Grounding([], EMPTY, text)
    items = cap(data, MAX_OBJECTS)
    main = parse_items(items)
    neg = parse_items(items, point_key=NEG_POINT_KEY)
    objects = []
    for i in range(main.count):
        box = tuple(float(v) for v in scale_box(main.boxes[i], input_size, orig_size)) if main.box_valid[i] else None
        point = tuple(float(v) for v in scale_point(main.points[i], input_size, orig_size)) if main.point_valid[i] else None
        neg_point = tuple(float(v) for v in scale_point(neg.points[i], input_size, orig_size)) if neg.point_valid[i] else None
        if box is not None or point is not None:
            objects.append(ObjectCue(box, point, neg_point))
    return Grounding(objects, OK if objects else MALFORMED, text)


def grounding_prompt(query: str, input_size: Sequence[int], negative_points: bool = False,
                     description: Optional[str] = None, num_reference: int = 0, style: str = "full") -> str:
    """The KTG prompt (``style`` as the policy was trained: ``data.prompt_style``); with reference
    frames, a first line says the last image is the keyframe."""
    text = ktg_prompt(query, input_size, negative_points=negative_points, description=description, style=style)
    if num_reference:
        text = (f"The first {num_reference} images are reference frames of the video, for context only; "
                "the last image is the keyframe, answer about it.\n" + text)
    return text


class GroundingStage:
    """Batched KTG questions through an :class:`~rl.eval.samplers.base.MLLMClient`.

    Args:
        client: the policy's client; input_size: policy input ``[W, H]``;
        negative_points: VideoSeg-R1 KTG prompt variant; temperature: sampling temperature
        (``rollout.val_temperature``, 0 = greedy); max_tokens: response budget;
        prompt_style: the KTG prompt style the policy was trained with (``data.prompt_style``).

    :attr:`stats` counts ``grounding/<status>``.
    """

    def __init__(self, client: Any, input_size: Sequence[int], negative_points: bool = False,
                 temperature: float = 0.0, max_tokens: Optional[int] = None, prompt_style: str = "full"):
        self.client = client
        self.prompt_style = prompt_style
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.negative_points = negative_points
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.stats: Counter = Counter()

    def ground(self, requests: Sequence[GroundingRequest]) -> list[Grounding]:
        if not requests:
            return []
        records = [
            {"prompt": grounding_prompt(r.query, self.input_size, self.negative_points, r.description,
                                        len(r.reference_images), style=self.prompt_style),
             "images": [*r.reference_images, r.keyframe_image]}
            for r in requests
        ]
        answers = self.client.ask(records, n=1, temperature=self.temperature, max_tokens=self.max_tokens)
        out = []
        for request, group in zip(requests, answers):
            grounding = parse_grounding(group[0].text, self.input_size, request.orig_size)
            self.stats[f"grounding/{grounding.status}"] += 1
            out.append(grounding)
        return out


def cue_prompts(objects: Sequence[ObjectCue], use_negative: bool = True) -> list[ObjectPrompt]:
    """Segmenter prompts: box, positive point (label 1) and, when present, negative point (label 0)."""
    prompts = []
    for obj in objects:
        points, labels = [], []
        if obj.point is not None:
            points.append(obj.point)
            labels.append(1)
        if use_negative and obj.neg_point is not None:
            points.append(obj.neg_point)
            labels.append(0)
        prompts.append(ObjectPrompt(box=obj.box, points=tuple(points), labels=tuple(labels)))
    return prompts


def segment_keyframe(segmenter: Segmenter, image: np.ndarray, groundings: Sequence[Grounding],
                     use_negative: bool = True) -> list[np.ndarray]:
    """One ``H x W`` bool mask per grounding on the same keyframe ``image`` (``H x W x 3`` uint8);
    a grounding without objects gives an all-False mask."""
    return segmenter.segment(image, [cue_prompts(g.objects, use_negative) for g in groundings])


def box_iou_before_segmentation(pred_boxes: np.ndarray, gt_boxes: np.ndarray) -> float:
    """RCoT-Seg diagnostic: matched box IoU of the predicted vs GT boxes (original resolution).

    One-to-one Hungarian matching maximising IoU (+1-pixel convention,
    :func:`rl.eval.metrics.box_iou`); score = sum of matched IoU / max(M, N). Both
    empty: 1 (a correct "no target"); exactly one empty: 0.
    """
    pred = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(pred) == 0 and len(gt) == 0:
        return 1.0
    if len(pred) == 0 or len(gt) == 0:
        return 0.0
    matrix = np.asarray(box_iou(pred, gt), dtype=np.float64).reshape(len(pred), len(gt))
    _, _, total = hungarian_max(matrix)
    return total / max(len(pred), len(gt))
