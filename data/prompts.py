"""Prompt templates per training task and CoT-SFT target builders.

Tasks (see ``data.samples``):

* ``ktg``    keyframe target grounding (VisionReasoner / RCoT-Seg answer format)
  ``<think>...</think><answer>[{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y]}, ...]</answer>``;
  the VideoSeg-R1 variant adds one negative point per object under the key
  ``"neg_point_2d"`` (the key the negative-point reward reads).
* ``aks``    agentic keyframe selection: answer exactly ``A`` (this frame is a valid
  keyframe showing the target) or ``B`` (reselect).
* ``veason`` Veason-R1: several frames with their timestamps (original frame
  indices); answer ``{"keyframe_timestamp": int, "bbox_2d_list": [[x1,y1,x2,y2], ...]}``.

The prompt text never contains image placeholders: a sample lists its images and the
model code builds the chat message as ``[{"type": "image"}, ..., {"type": "text", "text": prompt}]``
(images first, in the order of ``sample["images"]``).

CoT-SFT targets are short, templated reasoning traces followed by the exact ground-truth
answer (compact JSON, parseable by ``json.loads``), e.g.
``<think>One object is "the red circle": small, upper left.</think><answer>[{"bbox_2d":[3,4,20,22],"point_2d":[11,13]}]</answer>``.
They are sized for the quickstart's tiny policy (about 120-150 characters, roughly 20-60
tokens with a ~1000-token byte-level BPE, for one object), every sentence is distinct
(the VisionReasoner non-repeat term splits on '.') and the query's trailing '.' is stripped.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

__all__ = [
    "AKS_OPTIONS",
    "ktg_prompt",
    "aks_prompt",
    "veason_prompt",
    "ktg_answer",
    "veason_answer",
    "ktg_sft_target",
    "aks_sft_target",
    "veason_sft_target",
    "describe_location",
    "describe_size",
    "clean_query",
]

# Option letters of the AKS decision: A keep the frame, B reselect.
AKS_OPTIONS = ("A", "B")

_KTG_TEMPLATE = (
    'Locate every object in the image that matches the query: "{query}".{context}\n'
    "First reason about the scene and the query inside <think> </think>, then give the answer "
    "inside <answer> </answer> as a JSON list with one entry per matching object:\n"
    "{format}\n"
    "Coordinates are integer pixels of this {width}x{height} image. "
    "If no object matches, answer []."
)
_KTG_FORMAT = '[{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y]}]'
_KTG_FORMAT_NEG = '[{"bbox_2d": [x1,y1,x2,y2], "point_2d": [x,y], "neg_point_2d": [x,y]}]'
_KTG_NEG_NOTE = (
    "\npoint_2d is a point inside the object; neg_point_2d is a point just outside it "
    "(on the background close to the object)."
)

_AKS_TEMPLATE = (
    'Query: "{query}".{context}\n'
    "Is this frame a good keyframe for segmenting the object(s) described by the query, "
    "i.e. are they clearly visible in it?\n"
    "A. Yes, keep this frame.\n"
    "B. No, select another frame.\n"
    "Reason inside <think> </think>, then answer with exactly one letter, A or B, inside <answer> </answer>."
)

_VEASON_TEMPLATE = (
    "You are given {num} frames sampled from a video, in temporal order, "
    "taken at timestamps {timestamps}.\n"
    'Query: "{query}".\n'
    "Pick the timestamp where the target is best visible, then locate every target object "
    "in that frame with a bounding box in integer pixels of the {width}x{height} frame.\n"
    "Reason inside <think> </think>, then answer inside <answer> </answer> as JSON:\n"
    '{{"keyframe_timestamp": t, "bbox_2d_list": [[x1,y1,x2,y2], ...]}}'
)


def clean_query(query: str) -> str:
    """Query text with surrounding whitespace, quotes and trailing ``.`` removed."""
    return " ".join(str(query).split()).strip().strip('"').rstrip(".").strip()


def _context(description: str | None) -> str:
    return f"\nVideo description: {clean_query(description)}." if description else ""


_KTG_COMPACT = 'Find "{query}" in this {width}x{height} image. Answer with <think></think><answer>{format}</answer>.'


def ktg_prompt(
    query: str,
    input_size: Sequence[int],
    negative_points: bool = False,
    description: str | None = None,
    style: str = "full",
) -> str:
    """KTG prompt for one keyframe of size ``input_size`` ``[W, H]``.

    ``negative_points`` selects the VideoSeg-R1 variant (one ``neg_point_2d`` per
    object); ``description`` optionally adds RCoT-Seg's video description as context.
    ``style="compact"``: a one-line prompt with the same answer format, for tiny models
    whose cost grows with the prompt length (the CPU quickstart).
    """
    if style == "compact":
        fmt = _KTG_FORMAT_NEG if negative_points else _KTG_FORMAT
        return _KTG_COMPACT.format(query=clean_query(query), width=int(input_size[0]),
                                   height=int(input_size[1]), format=fmt)
    if style != "full":
        raise ValueError(f"unknown prompt style {style!r}; expected 'full' or 'compact'")
    fmt = _KTG_FORMAT_NEG if negative_points else _KTG_FORMAT
    text = _KTG_TEMPLATE.format(
        query=clean_query(query), context=_context(description), format=fmt,
        width=int(input_size[0]), height=int(input_size[1]),
    )
    return text + (_KTG_NEG_NOTE if negative_points else "")


def aks_prompt(query: str, description: str | None = None) -> str:
    """AKS prompt: is the shown frame a valid keyframe for the query (A) or not (B)."""
    return _AKS_TEMPLATE.format(query=clean_query(query), context=_context(description))


def veason_prompt(query: str, timestamps: Sequence[int], input_size: Sequence[int]) -> str:
    """Veason-R1 prompt for ``len(timestamps)`` frames (images in the same order as ``timestamps``)."""
    ts = ", ".join(str(int(t)) for t in timestamps)
    return _VEASON_TEMPLATE.format(
        num=len(timestamps), timestamps=ts, query=clean_query(query),
        width=int(input_size[0]), height=int(input_size[1]),
    )


# ---------------------------------------------------------------------------- answers


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def ktg_answer(objects: Sequence[Mapping[str, Any]], negative_points: bool = False) -> str:
    """Compact JSON list of ``{"bbox_2d", "point_2d"[, "neg_point_2d"]}`` per object.

    An object without a negative point (none could be placed) omits ``neg_point_2d``.
    """
    items = []
    for obj in objects:
        item = {"bbox_2d": list(obj["bbox_2d"]), "point_2d": list(obj["point_2d"])}
        if negative_points and obj.get("neg_point_2d") is not None:
            item["neg_point_2d"] = list(obj["neg_point_2d"])
        items.append(item)
    return _compact(items)


def veason_answer(keyframe_timestamp: int, boxes: Sequence[Sequence[int]]) -> str:
    """Compact JSON ``{"keyframe_timestamp": t, "bbox_2d_list": [[x1,y1,x2,y2], ...]}``."""
    return _compact({"keyframe_timestamp": int(keyframe_timestamp), "bbox_2d_list": [list(b) for b in boxes]})


# ------------------------------------------------------------------ reasoning phrases


def describe_location(box: Sequence[float], size: Sequence[int]) -> str:
    """Coarse 3x3 position of the box centre in an image of size ``[W, H]``: e.g. ``"upper left"``, ``"center"``."""
    w, h = float(size[0]), float(size[1])
    cx = (box[0] + box[2]) / 2.0 / w
    cy = (box[1] + box[3]) / 2.0 / h
    col = "left" if cx < 1 / 3 else ("right" if cx >= 2 / 3 else "")
    row = "upper" if cy < 1 / 3 else ("lower" if cy >= 2 / 3 else "")
    if not row and not col:
        return "center"
    if not row:
        return f"middle {col}"
    if not col:
        return f"{row} middle"
    return f"{row} {col}"


def describe_size(box: Sequence[float], size: Sequence[int]) -> str:
    """``"small"`` / ``"medium"`` / ``"large"`` by box area relative to the image (< 4 %, < 25 %, else)."""
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    frac = area / float(size[0] * size[1])
    return "small" if frac < 0.04 else ("medium" if frac < 0.25 else "large")


def _object_phrases(boxes: Sequence[Sequence[int]], size: Sequence[int]) -> str:
    """``"medium, middle right; small, upper left"``: size and position per object, in answer order."""
    return "; ".join(f"{describe_size(b, size)}, {describe_location(b, size)}" for b in boxes)


def _count_phrase(n: int) -> str:
    return "One object is" if n == 1 else f"{n} objects are"


# ------------------------------------------------------------------------ SFT targets


def ktg_sft_target(
    query: str,
    objects: Sequence[Mapping[str, Any]],
    input_size: Sequence[int],
    negative_points: bool = False,
    style: str = "full",
) -> str:
    """``<think>`` short trace ``</think><answer>`` exact KTG answer ``</answer>``.

    objects: GT objects in input coordinates (``bbox_2d``, ``point_2d``, optional
    ``neg_point_2d``); an empty list gives the no-target answer ``[]``.
    ``style="compact"`` drops the restated query from the trace (size and place only),
    which a tiny model learns in a few hundred steps.
    """
    q = clean_query(query)
    if not objects:
        think = "Nothing matches." if style == "compact" else f'Nothing in the image is "{q}".'
    else:
        boxes = [o["bbox_2d"] for o in objects]
        where = _object_phrases(boxes, input_size)
        think = f"{where}." if style == "compact" else f'{_count_phrase(len(objects))} "{q}": {where}.'
    return f"<think>{think}</think><answer>{ktg_answer(objects, negative_points)}</answer>"


def aks_sft_target(
    query: str,
    answer: str,
    boxes: Sequence[Sequence[int]] = (),
    input_size: Sequence[int] | None = None,
) -> str:
    """AKS target: a one/two-sentence trace and ``A`` / ``B``.

    For ``A``, ``boxes`` (targets on the frame, input coordinates) and ``input_size``
    let the trace say where the target is.
    """
    if answer not in AKS_OPTIONS:
        raise ValueError(f"AKS answer must be one of {AKS_OPTIONS}, got {answer!r}")
    q = clean_query(query)
    if answer == "A":
        where = ""
        if boxes and input_size is not None:
            where = ": " + _object_phrases(list(boxes), input_size)
        think = f'"{q}" is clearly visible{where}. Keep this frame.'
    else:
        think = f'"{q}" is not visible in this frame. Select another frame.'
    return f"<think>{think}</think><answer>{answer}</answer>"


def veason_sft_target(
    query: str,
    keyframe_timestamp: int,
    boxes: Sequence[Sequence[int]],
    input_size: Sequence[int],
) -> str:
    """Veason-R1 target: trace naming the keyframe and target positions, then the exact answer."""
    q = clean_query(query)
    think = f'"{q}" is best visible at timestamp {int(keyframe_timestamp)}'
    think += f": {_object_phrases(boxes, input_size)}." if boxes else "."
    return f"<think>{think}</think><answer>{veason_answer(keyframe_timestamp, boxes)}</answer>"
