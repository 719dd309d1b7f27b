"""Property-based fuzzing: no reward raises on any model output and every score stays in its range."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import REWARD_NAMES, compute, compute_group, score_range
from tests.rewards.rewards_fakes import BoxFillSegmenter, CopyPropagator, box_mask, rle, write_image

S = 24
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def truths(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    key = box_mask((S, S), [4, 4, 12, 15])
    objects = [{"bbox_2d": [4, 4, 12, 15], "point_2d": [8, 9]}, {"bbox_2d": [14, 2, 20, 6], "point_2d": [17, 4]}]
    frames = [box_mask((S, S), b) for b in ([0, 0, -1, -1], [4, 4, 12, 15], [5, 5, 10, 10])]
    return {
        "visionreasoner": {"objects": objects},
        "rcot_ktg": {"objects": objects},
        "dense_grounding": {"objects": objects},
        "segzero_strict": {"objects": [{"bbox_2d": [4, 4, 12, 15], "points": [[6, 6], [10, 12]]}]},
        "rcot_aks": {"answer": "A"},
        "videoseg_r1": {"objects": objects, "masks": [rle(key)], "input_size": [S, S], "difficulty": 3.0,
                        "image_path": write_image(tmp / "key.png", (S + 8, S + 4))},
        "veason_r1": {"frames": [0, 3, 6], "frame_boxes": [[], [[4, 4, 12, 15]], [[5, 5, 10, 10]]],
                      "frame_masks": [rle(m) for m in frames], "input_size": [S, S],
                      "frame_paths": [write_image(tmp / f"f{t}.png", (S, S), seed=t) for t in range(3)]},
    }


numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-50, max_value=60),
    st.sampled_from([0, 5, 8, 12, 1e308, -1e308, 10**400]),
)
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=20)
coords = st.one_of(st.lists(numbers, min_size=0, max_size=5), json_values)
items = st.one_of(
    st.fixed_dictionaries({"bbox_2d": coords, "point_2d": coords}, optional={"neg_point_2d": coords}),
    st.fixed_dictionaries({"bbox": coords, "points_1": coords, "points_2": coords}),
    json_values,
)
answers = st.one_of(
    st.lists(items, max_size=6),
    st.fixed_dictionaries({"keyframe_timestamp": st.one_of(st.sampled_from([0, 3, 6, 7]), scalars),
                           "bbox_2d_list": st.one_of(st.lists(coords, max_size=6), json_values)}),
    st.sampled_from(["A", "B", "C", ""]),
    json_values,
)


def _dump(value):
    try:
        return json.dumps(value, allow_nan=True)
    except (ValueError, OverflowError):
        return repr(value)


@st.composite
def responses(draw):
    body = _dump(draw(answers))
    think = draw(st.text(max_size=40))
    text = draw(st.sampled_from([
        f"<think>{think}</think><answer>{body}</answer>",
        f"<think>{think}</think>\n<answer>{body}</answer>{think}",
        f"<answer>{body}</answer>",
        body,
    ]))
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]      # truncated generation
    return text


def _check(name, result, low, high):
    assert low - 1e-9 <= result["score"] <= high + 1e-9, (name, result)
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.values()), result


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_structured_garbage_never_raises(name, truths):
    low, high = score_range(name)

    @FUZZ
    @given(responses())
    def run(text):
        _check(name, compute(name, text, truths[name], segmenter=BoxFillSegmenter(), propagator=CopyPropagator()),
               low, high)

    run()


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_arbitrary_unicode_never_raises(name, truths):
    low, high = score_range(name)

    @settings(max_examples=15, deadline=None)
    @given(st.text(alphabet=st.characters(codec=None), max_size=200))
    def run(text):
        _check(name, compute(name, text, truths[name], use_default_models=False), low, high)

    run()


HUGE = [
    "<think>" + "a. " * 30_000 + "</think><answer>[]</answer>",
    "<answer>" + "[" * 50_000 + "</answer>",
    "<think>x</think><answer>" + json.dumps([{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}] * 5_000) + "</answer>",
    "<answer>[" + "9" * 6_000 + "]</answer>",
    "<think>" * 2_000 + "</answer>" * 2_000,
    '<answer>{"keyframe_timestamp": 3, "bbox_2d_list": ' + json.dumps([[1, 1, 5, 5]] * 3_000) + "}</answer>",
    "\x00\ud800\uffff" * 1000,
    "<answer>" * 4_000,                          # quadratic for a backtracking regex
    "{" * 30_000,
    "<think></think><answer>" * 2_000,
]


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_huge_outputs(name, truths):
    low, high = score_range(name)
    results = compute_group(name, HUGE, truths[name], segmenter=BoxFillSegmenter(), propagator=CopyPropagator())
    for result in results:
        _check(name, result, low, high)


@pytest.mark.parametrize("name", ["visionreasoner", "rcot_ktg", "videoseg_r1", "dense_grounding"])
def test_random_numeric_boxes_stay_in_range(name, truths):
    """Well-formed answers with random (negative, out-of-image, reversed) coordinates."""
    low, high = score_range(name)
    rng = np.random.default_rng(0)
    texts = []
    for _ in range(24):
        k = int(rng.integers(0, 5))
        objs = [{"bbox_2d": rng.integers(-30, 60, 4).tolist(), "point_2d": rng.integers(-30, 60, 2).tolist(),
                 "neg_point_2d": rng.normal(10, 30, 2).tolist()} for _ in range(k)]
        texts.append(f"<think>r</think><answer>{json.dumps(objs)}</answer>")
    seg = BoxFillSegmenter()
    for result in compute_group(name, texts, truths[name], segmenter=seg):
        _check(name, result, low, high)
    assert len(seg.calls) <= 1
