"""Parsing of model responses: tags, answer JSON, coercion of cues, repetition check.

Nothing here raises on any response text: failures come back as ``None`` /
invalid flags. Conventions follow the VisionReasoner / Seg-Zero reference code:

* think format: ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>", s, re.S)``;
* the answer is the **first** ``<answer>\\s*(.*?)\\s*</answer>`` match, parsed
  with ``json.loads`` (which accepts ``NaN`` / ``Infinity``; coercion below
  rejects them);
* non-repeat: split the whole response on ``'.'``, strip, drop empty pieces;
  every sentence already seen counts one repeat; the score is 0 once the
  count reaches ``max_repeats`` (2 in the reference code, i.e. a single
  repeated sentence is tolerated).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from numbers import Real
from typing import Any, Sequence

import numpy as np

THINK_ANSWER_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
FIRST_OBJECT_RE = re.compile(r"{[^}]+}")

BOX_KEY = "bbox_2d"
POINT_KEY = "point_2d"
NEG_POINT_KEY = "neg_point_2d"

_NOT_FOUND = object()


def as_text(response: Any) -> str:
    """Any model output as ``str`` (bytes decoded with replacement, ``None`` -> "")."""
    if isinstance(response, str):
        return response
    if response is None:
        return ""
    if isinstance(response, (bytes, bytearray)):
        return bytes(response).decode("utf-8", errors="replace")
    try:
        return str(response)
    except Exception:  # an object whose __str__ raises
        return ""


def think_format_ok(response: str) -> bool:
    """True iff the whole response is ``<think>...</think> <answer>...</answer>``."""
    return THINK_ANSWER_RE.fullmatch(response) is not None


def extract_answer(response: str) -> str | None:
    """Stripped content of the first ``<answer>...</answer>``, or None."""
    match = ANSWER_RE.search(response)
    return None if match is None else match.group(1)


def extract_think(response: str) -> str | None:
    """Content of the first closed ``<think>...</think>``, else the text after an unclosed
    ``<think>``, else None."""
    match = THINK_RE.search(response)
    if match is not None:
        return match.group(1)
    start = response.find("<think>")
    return None if start < 0 else response[start + len("<think>"):]


def loads_or_none(text: str | None) -> Any:
    """``json.loads(text)`` or the sentinel :data:`_NOT_FOUND` on any failure
    (bad JSON, too deep nesting, integers beyond Python's digit limit, ...)."""
    if text is None:
        return _NOT_FOUND
    try:
        return json.loads(text)
    except Exception:
        return _NOT_FOUND


def parse_answer_json(response: str) -> tuple[bool, Any]:
    """``(ok, value)``: the first answer block parsed as JSON."""
    value = loads_or_none(extract_answer(response))
    return (value is not _NOT_FOUND), (None if value is _NOT_FOUND else value)


def parse_first_json_object(response: str) -> dict | None:
    """The first ``{...}`` without nested braces anywhere in the response, as a dict
    (Seg-Zero's reference extraction), or None."""
    match = FIRST_OBJECT_RE.search(response)
    if match is None:
        return None
    value = loads_or_none(match.group(0))
    return value if isinstance(value, dict) else None


# ----------------------------------------------------------------- coercion


def coerce_number(value: Any) -> float | None:
    """A finite real number as float; None for bool, str, NaN, inf, overflow, anything else."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if math.isfinite(number) else None


def coerce_vector(value: Any, length: int) -> tuple[float, ...] | None:
    """A list/tuple of exactly ``length`` finite numbers, else None."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        return None
    out = []
    for v in value:
        number = coerce_number(v)
        if number is None:
            return None
        out.append(number)
    return tuple(out)


def is_list_of_len(value: Any, length: int, numeric: bool = False) -> bool:
    """The reference format rule: ``isinstance(value, list) and len(value) == length``
    (plus finite numbers when ``numeric``)."""
    if not isinstance(value, list) or len(value) != length:
        return False
    return (not numeric) or coerce_vector(value, length) is not None


def cap(items: Sequence[Any], max_items: int) -> list[Any]:
    """The first ``max_items`` items (``max_items < 0`` means no cap)."""
    items = list(items)
    return items if max_items < 0 else items[:max_items]


@dataclass(frozen=True)
class ParsedItems:
    """Per-item cues of an answer list (after capping).

    boxes ``M x 4`` and points ``M x 2`` float64 (NaN where invalid);
    box_valid / point_valid ``M`` bool; ``all_valid``: every item is a dict with
    a valid box and a valid point.
    """

    boxes: np.ndarray
    points: np.ndarray
    box_valid: np.ndarray
    point_valid: np.ndarray

    @property
    def count(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def all_valid(self) -> bool:
        return bool(np.all(self.box_valid) and np.all(self.point_valid))


def parse_items(items: Sequence[Any], box_key: str = BOX_KEY, point_key: str = POINT_KEY) -> ParsedItems:
    """Coerce answer items (dicts) into box/point arrays with validity flags; never raises."""
    m = len(items)
    boxes = np.full((m, 4), np.nan)
    points = np.full((m, 2), np.nan)
    box_valid = np.zeros(m, dtype=bool)
    point_valid = np.zeros(m, dtype=bool)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        box = coerce_vector(item.get(box_key), 4)
        if box is not None:
            boxes[i] = box
            box_valid[i] = True
        point = coerce_vector(item.get(point_key), 2)
        if point is not None:
            points[i] = point
            point_valid[i] = True
    return ParsedItems(boxes, points, box_valid, point_valid)


def parse_boxes(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bare boxes ``[[x1,y1,x2,y2], ...]`` -> (``M x 4`` float64 with NaN rows, ``M`` valid flags)."""
    m = len(values)
    boxes = np.full((m, 4), np.nan)
    valid = np.zeros(m, dtype=bool)
    for i, value in enumerate(values):
        box = coerce_vector(value, 4)
        if box is not None:
            boxes[i] = box
            valid[i] = True
    return boxes, valid


def answer_format_score(data: Any, numeric: bool = False) -> tuple[float, float]:
    """VisionReasoner answer format split in its two halves, each in [0, 1]:
    (fraction of items with ``bbox_2d`` a list of 4, fraction with ``point_2d`` a list of 2).

    ``data`` must be a non-empty JSON list; anything else scores (0, 0).
    """
    if not isinstance(data, list) or not data:
        return 0.0, 0.0
    n_box = n_point = 0
    for item in data:
        if not isinstance(item, dict):
            continue
        n_box += is_list_of_len(item.get(BOX_KEY), 4, numeric)
        n_point += is_list_of_len(item.get(POINT_KEY), 2, numeric)
    return n_box / len(data), n_point / len(data)


# ------------------------------------------------------------ non-repeat


def count_repeats(response: str) -> int:
    """Number of sentences (split on '.', stripped, non-empty) already seen earlier."""
    seen: set[str] = set()
    repeats = 0
    for piece in response.split("."):
        sentence = piece.strip()
        if not sentence:
            continue
        if sentence in seen:
            repeats += 1
        else:
            seen.add(sentence)
    return repeats


def non_repeat_score(response: str, max_repeats: int = 2) -> float:
    """1.0 unless at least ``max_repeats`` repeated sentences occur (reference: 2), then 0.0."""
    return 0.0 if count_repeats(response) >= max_repeats else 1.0


def whitespace_tokens(text: str | None) -> int:
    """Whitespace-separated token count (0 for None)."""
    return 0 if not text else len(text.split())
