"""Prompts and answer parsers of the frame-sampler questions.

Every question shows frames as images (in temporal order; their original frame
indices are listed in the text) and asks for ``<think>...</think>`` then
``<answer>...</answer>``. Answer formats:

==============  ==========================================  =====================================
question        answer content                              value
==============  ==========================================  =====================================
interval        ``[start, end]`` (JSON list, frame indices)  inclusive frame range, clipped to the
 (HTFS level)                                                 segment asked about; reversed -> swapped
position        ``p`` in ``[0, 100]`` (percent, ``%`` ok)     fraction ``p / 100`` of the key segment
 (HTFS frame)
description     free text                                   the text (VDG)
keyframe        one frame index ``t`` in ``[0, T-1]``         the frame (KFG / re-selection)
AKS             ``A`` (keep) or ``B`` (reselect)             ``data.prompts.aks_prompt`` options
Veason-R1       ``{"keyframe_timestamp": t,                  frame index and ``M x 4`` boxes in the
                "bbox_2d_list": [[x1,y1,x2,y2], ...]}``      sampled frames' input size
==============  ==========================================  =====================================

Parsers never raise. They return :class:`Parsed` with ``status``:

* ``"ok"``: the content of the first ``<answer>`` block (``rewards.parsing.extract_answer``)
  has the documented form;
* ``"lenient"``: usable only by a relaxed reading (no answer tags: the whole response
  is read; a number found inside extra text; a reversed interval; a letter
  followed by text), so the value is used but counted;
* ``"malformed"``: nothing usable (``value`` is None); the caller applies its
  documented fallback and counts it.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from data.prompts import AKS_OPTIONS, clean_query
from rewards.parsing import as_text, cap, coerce_number, extract_answer, loads_or_none, parse_boxes, parse_first_json_object

__all__ = [
    "OK", "LENIENT", "MALFORMED", "Parsed", "MAX_BOXES",
    "interval_prompt", "position_prompt", "description_prompt", "keyframe_prompt",
    "parse_interval", "parse_position", "parse_description", "parse_keyframe", "parse_aks", "parse_veason",
]

OK, LENIENT, MALFORMED = "ok", "lenient", "malformed"
#: Boxes read from one Veason-R1 answer (the rewards' list cap).
MAX_BOXES = 120

_NUMBER_RE = re.compile(r"[-+]?\d+(?:\.\d+)?")
_THINK_BLOCK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_TAG_RE = re.compile(r"</?(?:think|answer)>")
_LETTER_RE = re.compile(r"^\W*(?:option\s+)?([A-Za-z])(?![A-Za-z])", re.IGNORECASE)


class Parsed(NamedTuple):
    value: Any
    status: str


_MALFORMED = Parsed(None, MALFORMED)
_FORMAT_NOTE = "Reason inside <think> </think>, then answer inside <answer> </answer>"


def _frames_line(indices: Sequence[int], num_frames: int) -> str:
    shown = ", ".join(str(int(t)) for t in indices)
    return (f"These {len(indices)} images are frames of a video of {num_frames} frames (indices 0 to "
            f"{num_frames - 1}), in temporal order, at frame indices {shown}.")


# ----------------------------------------------------------------------------- prompts


def interval_prompt(query: str, indices: Sequence[int], num_frames: int, lo: int, hi: int) -> str:
    """HTFS segment question: the part of frames ``lo..hi`` relevant to the query."""
    return (
        f"{_frames_line(indices, num_frames)}\n"
        f'Query: "{clean_query(query)}".\n'
        f"Which contiguous part of the video between frames {lo} and {hi} is relevant to the query, "
        "i.e. shows the object(s) it describes?\n"
        f"{_FORMAT_NOTE} as the first and last frame index of that part, a JSON list [start, end]."
    )


def position_prompt(query: str, indices: Sequence[int], num_frames: int, lo: int, hi: int) -> str:
    """HTFS frame question: relative position (percent) of the target frame inside ``lo..hi``."""
    return (
        f"{_frames_line(indices, num_frames)}\n"
        f'Query: "{clean_query(query)}".\n'
        f"Consider the clip from frame {lo} to frame {hi}. At which relative position in this clip are the "
        f"object(s) described by the query best visible? 0 is the start of the clip (frame {lo}) and 100 its end.\n"
        f"{_FORMAT_NOTE} as one number between 0 and 100."
    )


def description_prompt(indices: Sequence[int], num_frames: int) -> str:
    """RCoT-Seg VDG: a short description of the whole video (query-independent)."""
    return (
        f"{_frames_line(indices, num_frames)}\n"
        "Describe the video briefly: the scene, the main objects and how they move.\n"
        f"{_FORMAT_NOTE} as the description."
    )


def keyframe_prompt(
    query: str,
    indices: Sequence[int],
    num_frames: int,
    rejected: Sequence[int] = (),
    description: Optional[str] = None,
) -> str:
    """RCoT-Seg KFG (``rejected`` empty) and re-selection (frames already judged unsuitable)."""
    text = f"{_frames_line(indices, num_frames)}\n"
    if description:
        text += f"Video description: {clean_query(description)}.\n"
    text += (f'Query: "{clean_query(query)}".\n'
             "Select the keyframe: the frame where the object(s) described by the query are most clearly visible.")
    if rejected:
        text += (" Frames " + ", ".join(str(int(t)) for t in rejected)
                 + " were judged unsuitable; select a different frame.")
    return text + f"\n{_FORMAT_NOTE} as one frame index."


# ----------------------------------------------------------------------------- parsing


def _content(response: Any) -> tuple[Optional[str], bool]:
    """``(answer content, tagged)``: the first answer block, else the response without think blocks / tags."""
    text = as_text(response)
    answer = extract_answer(text)
    if answer is not None:
        return answer, True
    rest = _TAG_RE.sub(" ", _THINK_BLOCK_RE.sub(" ", text)).strip()
    return (rest or None), False


def _numbers(text: str) -> list[float]:
    return [float(m) for m in _NUMBER_RE.findall(text)]


def parse_interval(response: Any, lo: int, hi: int) -> Parsed:
    """Interval answer -> ``(start, end)`` ints with ``lo <= start <= end <= hi``.

    Non-integer bounds are rounded (half up); bounds outside ``lo..hi`` are clipped; an
    interval entirely outside ``lo..hi`` is malformed.
    """
    content, tagged = _content(response)
    if content is None:
        return _MALFORMED
    value = loads_or_none(content)
    status = OK if tagged else LENIENT
    pair = None
    if isinstance(value, list) and len(value) == 2:
        pair = [coerce_number(v) for v in value]
        if None in pair:
            pair = None
    if pair is None:
        nums = _numbers(content)
        if len(nums) < 2:
            return _MALFORMED
        pair, status = nums[:2], LENIENT
    start, end = (math.floor(v + 0.5) for v in pair)
    if start > end:
        start, end, status = end, start, LENIENT
    if end < lo or start > hi:
        return _MALFORMED
    return Parsed((max(start, lo), min(end, hi)), status)


def _number(text: str, content: str, tagged: bool) -> tuple[Optional[float], str]:
    """``text`` read as one JSON number, else the first number found in ``content`` (lenient)."""
    number = coerce_number(loads_or_none(text))
    if number is not None:
        return number, OK if tagged else LENIENT
    nums = _numbers(content)
    return (nums[0], LENIENT) if nums else (None, LENIENT)


def parse_position(response: Any) -> Parsed:
    """Position answer (percent in ``[0, 100]``) -> fraction in ``[0, 1]``."""
    content, tagged = _content(response)
    if content is None:
        return _MALFORMED
    number, status = _number(content.strip().rstrip("%").strip(), content, tagged)
    if number is None or not 0.0 <= number <= 100.0:
        return _MALFORMED
    return Parsed(number / 100.0, status)


def parse_description(response: Any) -> Parsed:
    """Description answer -> non-empty stripped text."""
    content, tagged = _content(response)
    if content is None or not content.strip():
        return _MALFORMED
    return Parsed(" ".join(content.split()), OK if tagged else LENIENT)


def parse_keyframe(response: Any, num_frames: int) -> Parsed:
    """Keyframe answer -> frame index in ``[0, num_frames - 1]`` (an integer; ``7.0`` counts)."""
    content, tagged = _content(response)
    if content is None:
        return _MALFORMED
    number, status = _number(content.strip(), content, tagged)
    if number is None or number != math.floor(number) or not 0 <= number < num_frames:
        return _MALFORMED
    return Parsed(int(number), status)


def parse_aks(response: Any, options: Sequence[str] = AKS_OPTIONS) -> Parsed:
    """AKS answer -> one of ``options`` (``A`` keep / ``B`` reselect).

    Lenient reading (answer tags required): a leading option letter followed by other
    text, e.g. ``"A. Yes, keep it"`` or ``"option b"``.
    """
    answer = extract_answer(as_text(response))
    if answer is None:
        return _MALFORMED
    if answer in options:
        return Parsed(answer, OK)
    match = _LETTER_RE.match(answer)
    if match and match.group(1).upper() in options:
        return Parsed(match.group(1).upper(), LENIENT)
    return _MALFORMED


def parse_veason(response: Any, num_frames: int) -> Parsed:
    """Veason-R1 answer -> ``(timestamp, boxes M x 4 float)`` (only valid boxes are kept).

    The timestamp must be an integral frame index in ``[0, num_frames - 1]``; a missing or
    invalid ``bbox_2d_list`` gives zero boxes (still a usable keyframe).
    """
    text = as_text(response)
    content, tagged = _content(text)
    data = loads_or_none(content)
    status = OK if tagged else LENIENT
    if not isinstance(data, dict):
        data = parse_first_json_object(text)
        status = LENIENT
    if not isinstance(data, dict):
        return _MALFORMED
    number = coerce_number(data.get("keyframe_timestamp"))
    if number is None or number != math.floor(number) or not 0 <= number < num_frames:
        return _MALFORMED
    raw = data.get("bbox_2d_list")
    boxes = np.zeros((0, 4))
    if isinstance(raw, list):
        arr, valid = parse_boxes(cap(raw, MAX_BOXES))
        boxes = arr[valid]
        if not valid.all():
            status = LENIENT
    else:
        status = LENIENT
    return Parsed((int(number), boxes), status)
