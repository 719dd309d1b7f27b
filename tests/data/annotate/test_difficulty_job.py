"""The ``difficulty`` job: strict rating parser, D and level, requests, verdicts and rows (no model)."""

from __future__ import annotations

import copy
import json

import pytest

from data.annotate.config import DEFAULT_AXES, JOB_NAMES
from data.annotate.difficulty import DifficultyJob, difficulty_level, mean_difficulty, parse_ratings
from data.annotate.jobs import JOBS, build_job
from data.annotate.job import AnnotationJob
from rewards.params import VideoSegR1Params
from rewards.registry import compute
from rewards.videoseg_r1 import token_budget
from rl.config import Config

AXES = list(DEFAULT_AXES)
GOOD = {"scene_complexity": 3, "segmentation_challenge": 4, "temporal_ambiguity": 5, "motion_complexity": 6,
        "linguistic_ambiguity": 7}
GOOD_TEXT = json.dumps(GOOD)


def _with(**changes):
    return json.dumps({**GOOD, **changes})


# ------------------------------------------------------------------------- parser


@pytest.mark.parametrize("text", [
    GOOD_TEXT,
    "  \n" + GOOD_TEXT + "\n ",
    "<answer>" + GOOD_TEXT + "</answer>",
    "<answer>\n  " + GOOD_TEXT + "\n</answer>\n",
    "```json\n" + GOOD_TEXT + "\n```",
    "```\n" + GOOD_TEXT + "\n```",
    "<answer>```json\n" + GOOD_TEXT + "\n```</answer>",
    "```json\n<answer>" + GOOD_TEXT + "</answer>\n```",
    json.dumps(dict(reversed(list(GOOD.items())))),          # key order does not matter
    json.dumps(GOOD, indent=2),
])
def test_valid_answers_parse_to_the_ratings(text):
    got = parse_ratings(text, AXES)
    assert got == GOOD
    assert list(got) == AXES                                  # returned in axis order


def test_an_integral_float_counts_as_its_integer():
    got = parse_ratings(_with(scene_complexity=7.0, motion_complexity=10.0), AXES)
    assert got["scene_complexity"] == 7 and type(got["scene_complexity"]) is int
    assert got["motion_complexity"] == 10


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "not json",
    "[3, 4, 5, 6, 7]",
    "Here are my ratings: " + GOOD_TEXT,                      # text outside the object
    GOOD_TEXT + " I hope this helps.",
    "<think>the scene is busy</think><answer>" + GOOD_TEXT + "</answer>",
    "<answer>" + GOOD_TEXT,                                   # unclosed tag
    GOOD_TEXT + "\n" + GOOD_TEXT,                             # two objects
    "<answer><answer>" + GOOD_TEXT + "</answer></answer>",   # the wrapper only once
    json.dumps({k: v for k, v in GOOD.items() if k != "motion_complexity"}),   # an axis missing
    _with(difficulty=5),                                      # an unknown key
    GOOD_TEXT[:-1] + ', "scene_complexity": 3}',              # a duplicate key
    _with(scene_complexity=True),
    _with(scene_complexity="7"),
    _with(scene_complexity=0),
    _with(scene_complexity=11),
    _with(scene_complexity=7.5),
    _with(scene_complexity=None),
    _with(scene_complexity=[7]),
    GOOD_TEXT.replace("3", "NaN"),
    GOOD_TEXT.replace("3", "Infinity"),
])
def test_anything_else_is_unparseable(text):
    assert parse_ratings(text, AXES) is None


def test_non_text_is_unparseable():
    assert parse_ratings(None, AXES) is None
    assert parse_ratings(GOOD, AXES) is None


def test_custom_axes():
    assert parse_ratings('{"a": 1, "b": 10}', ["a", "b"]) == {"a": 1, "b": 10}
    assert parse_ratings(GOOD_TEXT, ["a", "b"]) is None


# ------------------------------------------------------------------ D and level


@pytest.mark.parametrize("ratings, d, level", [
    ([3, 4, 5, 6, 7], 5.0, "medium"),
    ([3, 3, 4, 4, 5], 3.8, "easy"),
    ([4, 4, 4, 4, 4], 4.0, "medium"),       # D = tau_easy is not easy
    ([7, 7, 7, 7, 7], 7.0, "hard"),         # D = tau_hard is hard
    ([6, 7, 7, 7, 7], 6.8, "medium"),
    ([5, 5, 5, 5, 6], 5.2, "medium"),
    ([1, 1, 1, 1, 2], 1.2, "easy"),
    ([10, 10, 9, 10, 10], 9.8, "hard"),
])
def test_mean_and_level_by_hand(ratings, d, level):
    got = mean_difficulty(dict(zip(AXES, ratings)))
    assert got == pytest.approx(d, abs=1e-12)
    assert difficulty_level(got, 4.0, 7.0) == level


def test_level_agrees_with_the_rewards_token_budget():
    p = VideoSegR1Params(tau_easy=3.5, tau_hard=6.0, budget_easy=10, budget_medium=20, budget_hard=30)
    budget = {"easy": 10, "medium": 20, "hard": 30}
    for d in [1.0, 3.4, 3.5, 3.6, 5.99, 6.0, 6.2, 10.0]:
        assert token_budget(d, p) == budget[difficulty_level(d, 3.5, 6.0)]


# ------------------------------------------------------------------------- the job


def _cfg(**difficulty):
    cfg = Config()
    for key, value in difficulty.items():
        setattr(cfg.annotate.difficulty, key, value)
    cfg.annotate.retry_temperature = 0.9
    return cfg


def _sample(**extra):
    return {"id": "s0", "task": "ktg", "query": '"the red ball."', "images": ["/x/0.png"], "prompt": "task prompt",
            "reward": "videoseg_r1",
            "ground_truth": {"objects": [{"bbox_2d": [1, 2, 10, 12], "point_2d": [5, 6]}], "input_size": [20, 20]},
            **extra}


def test_requests_reuse_the_images_and_use_the_retry_temperature():
    job = DifficultyJob(_cfg(temperature=0.3), "rater-model")
    sample = _sample()
    first, retry = job.request(sample, 0), job.request(sample, 2)
    assert (first.n, first.temperature, retry.n, retry.temperature) == (1, 0.3, 1, 0.9)
    assert first.prompt["images"] == ["/x/0.png"] and "system" not in first.prompt
    text = first.prompt["prompt"]
    assert '"the red ball"' in text and all(axis in text for axis in AXES)
    assert json.loads(text[text.index("{"): text.index("}") + 1]) == dict.fromkeys(AXES, 5)   # the example
    assert job.request(_sample(system="be terse"), 0).prompt["system"] == "be terse"


def test_a_custom_prompt_fills_query_and_axes_and_keeps_other_braces():
    job = DifficultyJob(_cfg(prompt='Q={query} AXES:\n{axes}\nAnswer like {"a": 1}', axes=["a", "b"]), "m")
    text = job.request(_sample(), 0).prompt["prompt"]
    assert text == 'Q=the red ball AXES:\n- a\n- b\nAnswer like {"a": 1}'


def test_judge_and_rows():
    cfg = _cfg()
    job = DifficultyJob(cfg, "rater-model")
    sample = _sample()
    before = copy.deepcopy(sample)
    outcome = job.judge(sample, ["<answer>" + _with(linguistic_ambiguity=8) + "</answer>"])
    assert outcome.status == "done"
    assert outcome.fields["difficulty"] == {"ratings": {**GOOD, "linguistic_ambiguity": 8}, "D": 5.2,
                                            "level": "medium", "rater": "rater-model"}
    [row] = job.rows(sample, outcome)
    assert sample == before                                  # the input is not modified
    assert row["ground_truth"]["difficulty"] == 5.2 and isinstance(row["ground_truth"]["difficulty"], float)
    assert row["ground_truth"]["objects"] == sample["ground_truth"]["objects"]
    assert {k: v for k, v in row.items() if k not in ("difficulty", "ground_truth")} == \
        {k: v for k, v in sample.items() if k != "ground_truth"}
    # the VideoSeg-R1 reward reads it: D = 5.2 is medium -> the medium budget
    r = compute("videoseg_r1", "<think>x</think><answer>[]</answer>", row["ground_truth"], use_default_models=False)
    assert (r["difficulty"], r["token_budget"]) == (5.2, float(cfg.reward.params.videoseg_r1.budget_medium))


def test_unparseable_answers_ask_again_and_a_failed_sample_is_unchanged():
    job = DifficultyJob(_cfg(), "m")
    sample = _sample()
    outcome = job.judge(sample, ["I think about 5"])
    assert (outcome.status, outcome.reason, outcome.raw) == ("retry", "unparseable", ["I think about 5"])
    from data.annotate.job import Outcome

    assert job.rows(sample, Outcome("failed", reason="unparseable")) == [sample]
    assert "difficulty" not in sample["ground_truth"]


def test_levels_follow_the_configured_thresholds():
    cfg = _cfg(axes=["a", "b"])
    cfg.reward.params.videoseg_r1.tau_easy, cfg.reward.params.videoseg_r1.tau_hard = 6.0, 9.0
    job = DifficultyJob(cfg, "m")
    levels = [job.judge(_sample(), [json.dumps({"a": a, "b": b})]).fields["difficulty"]["level"]
              for a, b in ((5, 6), (6, 6), (9, 8), (9, 9))]
    assert levels == ["easy", "medium", "medium", "hard"]
    assert job.settings()["levels"] == {"tau_easy": 6.0, "tau_hard": 9.0}
    assert job.settings()["difficulty"]["axes"] == ["a", "b"]


def test_registry_builds_every_job():
    assert tuple(JOBS) == JOB_NAMES
    cfg = Config()
    for name in JOB_NAMES:
        job = build_job(name, cfg, "model-x")
        assert isinstance(job, AnnotationJob) and job.name == name and job.model_name == "model-x"
        json.dumps(job.settings())                           # stored in the output manifest
    with pytest.raises(ValueError, match="unknown annotate job 'nope'"):
        build_job("nope", cfg, "m")
