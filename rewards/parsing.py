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

# Reference patterns. The functions below give exactly their results (checked by
# property tests) in linear time: the regexes backtrack quadratically on outputs
# such as "<answer>" repeated thousands of times.
THINK_ANSWER_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)
THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
FIRST_OBJECT_RE = re.compile(r"{[^}]+}")
_THINK_TO_ANSWER_RE = re.compile(r"</think>\s*<answer>")

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
    """True iff ``THINK_ANSWER_RE.fullmatch(response)``: the whole response is
    ``<think>...</think> <answer>...</answer>`` (linear time)."""
    if not (response.startswith("<think>") and response.endswith("</answer>")):
        return False
    # The earliest "</think>\s*<answer>" after the opening tag must end before the closing tag.
    sep = _THINK_TO_ANSWER_RE.search(response, len("<think>"))
    return sep is not None and sep.end() <= len(response) - len("</answer>")


def extract_answer(response: str) -> str | None:
    """``ANSWER_RE.search(response).group(1)``: the stripped content of the first
    ``<answer>...</answer>``, or None (linear time)."""
    start = response.find("<answer>")
    if start < 0:
        return None
    start += len("<answer>")
    stop = response.find("</answer>", start)
    return None if stop < 0 else response[start:stop].strip()


def extract_think(response: str) -> str | None:
    """Content of the first closed ``<think>...</think>`` (``THINK_RE``), else the text after
    an unclosed ``<think>``, else None (linear time)."""
    start = response.find("<think>")
    if start < 0:
        return None
    start += len("<think>")
    stop = response.find("</think>", start)
    return response[start:] if stop < 0 else response[start:stop]


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


def first_object_text(response: str) -> str | None:
    """``FIRST_OBJECT_RE.search(response).group(0)``: the first ``{...}`` holding at least
    one character and no ``}``, or None (linear time)."""
    pos = 0
    while True:
        start = response.find("{", pos)
        if start < 0:
            return None
        stop = response.find("}", start + 1)
        if stop < 0:
            return None
        if stop > start + 1:
            return response[start: stop + 1]
        pos = stop + 1  # "{}": no "{" lies between, the next candidate starts after it


def parse_first_json_object(response: str) -> dict | None:
    """The first ``{...}`` without nested braces anywhere in the response, as a dict
    (Seg-Zero's reference extraction), or None."""
    value = loads_or_none(first_object_text(response))
    return value if isinstance(value, dict) else None


# ----------------------------------------------------------------- coercion


def coerce_number(value: Any) -> float | None:
    """A finite real number as float; None for bool, str, NaN, inf, overflow, anything else."""
    kind = type(value)
    if kind is float:  # fast paths: JSON floats and ints
        return value if math.isfinite(value) else None
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return None
    if kind is bool or not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return number if math.isfinite(number) else None


def coerce_vector(value: Any, length: int) -> tuple[float, ...] | None:
    """A list/tuple (or 1-D numpy array) of exactly ``length`` finite numbers, else None."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != length:
        return None
    out = tuple(map(coerce_number, value))
    return None if None in out else out


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


def slice_items(items: ParsedItems, start: int, stop: int) -> ParsedItems:
    """Rows ``start:stop`` of a :class:`ParsedItems` (views)."""
    return ParsedItems(items.boxes[start:stop], items.points[start:stop],
                       items.box_valid[start:stop], items.point_valid[start:stop])


_NUM_TYPES = frozenset((int, float))


def vector_rows(values: Sequence[Any], length: int) -> list[Sequence[Any]]:
    """Per value: itself if a list/tuple of ``length`` plain ints/floats (finiteness not yet
    checked), its :func:`coerce_vector` otherwise, or a NaN row."""
    nan_row = (math.nan,) * length
    rows = []
    for value in values:
        if type(value) in (list, tuple) and len(value) == length and _NUM_TYPES.issuperset(map(type, value)):
            rows.append(value)
        else:
            rows.append(coerce_vector(value, length) or nan_row)
    return rows


def rows_to_array(rows: Sequence[Sequence[Any]], length: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`vector_rows` output -> (``K x length`` float64 with NaN rows where invalid, ``K`` valid flags)."""
    try:
        arr = np.array(rows, dtype=np.float64).reshape(-1, length)
    except OverflowError:  # an int beyond float range
        nan_row = (math.nan,) * length
        arr = np.array([coerce_vector(r, length) or nan_row for r in rows], dtype=np.float64).reshape(-1, length)
    valid = np.isfinite(arr).all(axis=1)
    arr[~valid] = np.nan
    return arr, valid


def item_rows(items: Sequence[Any], box_key: str = BOX_KEY, point_key: str = POINT_KEY) -> tuple[list, list]:
    """Box and point :func:`vector_rows` of answer items (non-dict items give NaN rows)."""
    dicts = [item if isinstance(item, dict) else {} for item in items]
    return vector_rows([d.get(box_key) for d in dicts], 4), vector_rows([d.get(point_key) for d in dicts], 2)


def items_from_rows(box_rows: Sequence[Sequence[Any]], point_rows: Sequence[Sequence[Any]]) -> ParsedItems:
    """:class:`ParsedItems` from :func:`item_rows` output (one vectorised conversion)."""
    boxes, box_valid = rows_to_array(box_rows, 4)
    points, point_valid = rows_to_array(point_rows, 2)
    return ParsedItems(boxes, points, box_valid, point_valid)


def parse_items(items: Sequence[Any], box_key: str = BOX_KEY, point_key: str = POINT_KEY) -> ParsedItems:
    """Coerce answer items (dicts) into box/point arrays with validity flags; never raises."""
    return items_from_rows(*item_rows(items, box_key, point_key))


def parse_boxes(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bare boxes ``[[x1,y1,x2,y2], ...]`` -> (``M x 4`` float64 with NaN rows, ``M`` valid flags)."""
    return rows_to_array(vector_rows(values, 4), 4)


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
