"""Parsing of responses: tags, answer JSON, coercion, non-repeat (reference behaviour)."""

import math

import pytest

from rewards.parsing import (
    answer_format_score,
    as_text,
    coerce_number,
    coerce_vector,
    count_repeats,
    extract_answer,
    extract_think,
    non_repeat_score,
    parse_answer_json,
    parse_first_json_object,
    parse_items,
    think_format_ok,
    whitespace_tokens,
)


@pytest.mark.parametrize(
    "text, ok",
    [
        ("<think>a</think><answer>b</answer>", True),
        ("<think>a\nb</think>\n  <answer>\n[1]\n</answer>", True),
        ("<think></think><answer></answer>", True),
        ("x<think>a</think><answer>b</answer>", False),          # text before
        ("<think>a</think><answer>b</answer>x", False),          # text after
        ("<think>a</think>x<answer>b</answer>", False),          # text between
        ("<answer>b</answer>", False),
        ("<think>a</think><answer>b", False),                   # truncated
    ],
)
def test_think_format(text, ok):
    assert think_format_ok(text) is ok


def test_first_answer_block_is_used_and_stripped():
    text = "<answer>\n  [1, 2]  \n</answer><answer>[3]</answer>"
    assert extract_answer(text) == "[1, 2]"
    assert parse_answer_json(text) == (True, [1, 2])
    assert extract_answer("no answer") is None
    assert parse_answer_json("<answer>[1,</answer>") == (False, None)


def test_answer_json_failures_never_raise():
    deep = "<answer>" + "[" * 100_000 + "]" * 100_000 + "</answer>"
    assert parse_answer_json(deep)[0] is False
    huge_int = "<answer>[" + "9" * 10_000 + "]</answer>"
    assert parse_answer_json(huge_int)[0] is False


def test_extract_think():
    assert extract_think("<think>a b</think><answer/>") == "a b"
    assert extract_think("<think>unfinished reasoning") == "unfinished reasoning"
    assert extract_think("none") is None
    assert whitespace_tokens("a  b\nc") == 3 and whitespace_tokens(None) == 0


@pytest.mark.parametrize(
    "value, expected",
    [(3, 3.0), (-2.5, -2.5), (True, None), ("3", None), (None, None), (float("nan"), None),
     (float("inf"), None), (10**400, None), ([1], None)],
)
def test_coerce_number(value, expected):
    assert coerce_number(value) == expected


def test_coerce_vector():
    assert coerce_vector([1, 2.5], 2) == (1.0, 2.5)
    assert coerce_vector((1, 2), 2) == (1.0, 2.0)
    assert coerce_vector([1, 2, 3], 2) is None
    assert coerce_vector([1, [2]], 2) is None
    assert coerce_vector({"x": 1}, 2) is None
    assert coerce_vector("12", 2) is None


def test_parse_items_flags_each_cue():
    items = [
        {"bbox_2d": [0, 0, 5, 5], "point_2d": [1, 1]},
        {"bbox_2d": [0, 0, 5], "point_2d": [1, 1]},
        {"bbox_2d": [0, 0, 5, float("nan")], "point_2d": ["a", 1]},
        "junk",
    ]
    parsed = parse_items(items)
    assert parsed.count == 4
    assert parsed.box_valid.tolist() == [True, False, False, False]
    assert parsed.point_valid.tolist() == [True, True, False, False]
    assert not parsed.all_valid
    assert parse_items(items[:1]).all_valid


def test_answer_format_score_follows_reference_rule():
    # Reference checks only "list of 4" / "list of 2", not the element types.
    data = [{"bbox_2d": [0, 0, 1, 1], "point_2d": [0, 0]}, {"bbox_2d": ["a", "b", "c", "d"]}, 5]
    assert answer_format_score(data) == (2 / 3, 1 / 3)
    assert answer_format_score(data, numeric=True) == (1 / 3, 1 / 3)
    assert answer_format_score([]) == (0.0, 0.0)
    assert answer_format_score({"bbox_2d": [0, 0, 1, 1]}) == (0.0, 0.0)


def test_non_repeat_reference_rule():
    # Sentences split on '.', stripped; 0 once two repeats are seen.
    assert count_repeats("A. B. A.") == 1 and non_repeat_score("A. B. A.") == 1.0
    assert count_repeats("A. B. A. B.") == 2 and non_repeat_score("A. B. A. B.") == 0.0
    assert non_repeat_score("A. A. A") == 0.0
    assert non_repeat_score("A.  A . ..") == 1.0          # stripped, empty pieces dropped
    assert non_repeat_score("A. B. A.", max_repeats=1) == 0.0
    assert non_repeat_score("") == 1.0


def test_first_json_object_anywhere():
    assert parse_first_json_object('x {"a": 1} {"b": 2}') == {"a": 1}
    assert parse_first_json_object('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_first_json_object("{not json}") is None
    assert parse_first_json_object("[1, 2]") is None


def test_as_text():
    assert as_text(None) == "" and as_text(b"\xffab") == "\ufffdab" and as_text(12) == "12"
    assert math.isnan(float("nan"))


# ------------------------------------------------- linear-time scanners == reference regexes

import time  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rewards.parsing import ANSWER_RE, FIRST_OBJECT_RE, THINK_ANSWER_RE, THINK_RE, first_object_text  # noqa: E402

_pieces = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", "{", "}", " ", "\n", "\x1c", "\u2003",
                           "a", ".", '"k": 1', "<", "/", ">"])
_tagged = st.lists(_pieces, max_size=14).map("".join)


@settings(max_examples=300, deadline=None)
@given(_tagged)
def test_scanners_equal_reference_regexes(text):
    assert think_format_ok(text) == (THINK_ANSWER_RE.fullmatch(text) is not None)
    match = ANSWER_RE.search(text)
    assert extract_answer(text) == (match.group(1) if match else None)
    match = FIRST_OBJECT_RE.search(text)
    assert first_object_text(text) == (match.group(0) if match else None)
    match = THINK_RE.search(text)
    if match is not None:
        assert extract_think(text) == match.group(1)


def test_scanners_are_linear_on_pathological_outputs():
    texts = ["<answer>" * 20_000, "{" * 100_000, "<think></think><answer>" * 5_000, "<think>" * 20_000]
    start = time.perf_counter()
    for text in texts:
        think_format_ok(text), extract_answer(text), first_object_text(text), extract_think(text)
    assert time.perf_counter() - start < 1.0
