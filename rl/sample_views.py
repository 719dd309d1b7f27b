"""The image column of the sample tables: a response's boxes and points drawn on its keyframe.

:func:`sample_view` reads what to draw from a training record and one response:

* the image: the record's first model-input image (``images[0]``, the KTG keyframe), or for
  Veason-R1 answers (``{"keyframe_timestamp": t, "bbox_2d_list": [...]}``) the sampled frame
  the response picked (the GT keyframe when it picked none of them);
* predicted boxes / points: the answer's ``bbox_2d`` / ``point_2d`` items (or ``bbox_2d_list``);
* GT boxes / points: ``ground_truth.objects`` (Veason-R1: ``frame_boxes`` of the shown frame).

Coordinates are in the model's input space, which is the size of the record's images.
:meth:`SampleView.render` draws predictions in red and the ground truth in green on the
image enlarged to at least :data:`MIN_SIDE` pixels on its short side. Nothing here raises
on a malformed response or record: what cannot be read is not drawn.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

#: Images smaller than this on their short side are enlarged (integer factor, nearest neighbour).
MIN_SIDE = 384
PRED_COLOUR = (255, 40, 40)
GT_COLOUR = (40, 220, 40)

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass
class SampleView:
    """What the image column of one sample row shows; coordinates in the image's pixels."""

    image_path: str
    pred_boxes: list[Box] = field(default_factory=list)
    pred_points: list[Point] = field(default_factory=list)
    gt_boxes: list[Box] = field(default_factory=list)
    gt_points: list[Point] = field(default_factory=list)

    def render(self, min_side: int = MIN_SIDE) -> Optional[np.ndarray]:
        """``sH x sW x 3`` uint8 (``s`` the integer enlargement), or None when the image cannot be read."""
        from PIL import Image, ImageDraw

        try:
            with Image.open(self.image_path) as handle:
                image = handle.convert("RGB")
        except (OSError, ValueError):
            return None
        scale = max(1, math.ceil(min_side / max(1, min(image.size))))
        if scale > 1:
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        width = max(2, scale)
        for boxes, points, colour in ((self.gt_boxes, self.gt_points, GT_COLOUR),
                                      (self.pred_boxes, self.pred_points, PRED_COLOUR)):
            for x1, y1, x2, y2 in boxes:
                xs, ys = sorted((x1 * scale, x2 * scale)), sorted((y1 * scale, y2 * scale))
                draw.rectangle((xs[0], ys[0], xs[1], ys[1]), outline=colour, width=width)
            for x, y in points:
                r = 2 * width
                draw.ellipse((x * scale - r, y * scale - r, x * scale + r, y * scale + r), outline=colour,
                             fill=colour)
        return np.asarray(image, dtype=np.uint8)


def _numbers(value: Any, n: int) -> Optional[tuple[float, ...]]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _items(items: Any, box_key: str = "bbox_2d", point_key: str = "point_2d") -> tuple[list[Box], list[Point]]:
    boxes: list[Box] = []
    points: list[Point] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        box, point = _numbers(item.get(box_key), 4), _numbers(item.get(point_key), 2)
        if box is not None:
            boxes.append(box)  # type: ignore[arg-type]
        if point is not None:
            points.append(point)  # type: ignore[arg-type]
    return boxes, points


def _ground_truth(record: dict[str, Any]) -> dict[str, Any]:
    gt = record.get("ground_truth")
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except ValueError:
            return {}
    if isinstance(gt, list):
        return {"objects": gt}
    return gt if isinstance(gt, dict) else {}


def sample_view(record: dict[str, Any], response: str) -> Optional[SampleView]:
    """The view of ``response`` to ``record`` (None: the record has no image)."""
    from rewards.parsing import parse_answer_json

    images = [str(p) for p in record.get("images") or [] if isinstance(p, (str, Path))]
    if not images:
        return None
    gt = _ground_truth(record)
    _, answer = parse_answer_json(response if isinstance(response, str) else "")
    if isinstance(answer, dict) and ("bbox_2d_list" in answer or "keyframe_timestamp" in answer):
        return _veason_view(images, gt, answer)
    pred_boxes, pred_points = _items(answer)
    gt_boxes, gt_points = _items(gt.get("objects"))
    return SampleView(images[0], pred_boxes, pred_points, gt_boxes, gt_points)


def _veason_view(images: list[str], gt: dict[str, Any], answer: dict[str, Any]) -> SampleView:
    frames = list(gt.get("frames") or [])
    picked = answer.get("keyframe_timestamp")
    if picked in frames:
        index = frames.index(picked)
    elif gt.get("keyframe") in frames:
        index = frames.index(gt["keyframe"])
    else:
        index = 0
    index = min(index, len(images) - 1)
    listed = answer.get("bbox_2d_list")
    pred_boxes = [b for b in (_numbers(v, 4) for v in (listed if isinstance(listed, list) else [])) if b is not None]
    frame_boxes = gt.get("frame_boxes")
    if isinstance(frame_boxes, list) and index < len(frame_boxes) and isinstance(frame_boxes[index], list):
        gt_boxes = [b for b in (_numbers(v, 4) for v in frame_boxes[index]) if b is not None]
    else:
        gt_boxes = _items(gt.get("objects"))[0]
    return SampleView(images[index], pred_boxes, [], gt_boxes, [])  # type: ignore[arg-type]


__all__ = ["MIN_SIDE", "SampleView", "sample_view"]
