"""The task difficulty D that ``launch.annotate difficulty`` stores in a built sample set reaches
the VideoSeg-R1 reward: the token budget follows the level of each record's D, a record without
one gets the budget of ``default_difficulty``, and the run logs the missing ones once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from data.build import build_samples
from rewards import compute
from rl.config import DataConfig, SyntheticConfig, load_config
from rl.difficulty_check import log_difficulty_coverage
from rl.run_setup import prepare_data

SYN = dict(num_videos=5, num_frames=4, height=48, width=64, seed=2)
# D per level under the configured thresholds (tau_easy 4, tau_hard 7): D < 4 easy, 4 <= D < 7 medium,
# D >= 7 hard; the boundaries 4.0 and 7.0 belong to the upper level.
STORED_D = [2.2, 3.99, 4.0, 6.5, 7.0, 9.4]
LEVEL_OF_D = {2.2: "easy", 3.99: "easy", 4.0: "medium", 6.5: "medium", 7.0: "hard", 9.4: "hard"}
# The configured budgets (reward.params.videoseg_r1.budget_easy / _medium / _hard).
BUDGET = {"easy": 128, "medium": 256, "hard": 384}
# One fixed response; its reasoning is counted as 300 tokens: over every budget but the hard one.
RESPONSE = ("<think>The red square on the left.</think>"
            "<answer>[{\"bbox_2d\": [1, 1, 9, 9], \"point_2d\": [5, 5]}]</answer>")
USED = 300
# s = 1 - beta (0.002) * (300 - budget), clamped to [0, 1]
SCALE = {"easy": 1 - 0.002 * 172, "medium": 1 - 0.002 * 44, "hard": 1.0}


def _rated(record: dict, d: float) -> dict:
    """``record`` as the difficulty job writes it: the ratings, D and the level, and D in the ground truth."""
    ratings = {"scene_complexity": 5, "segmentation_challenge": 5, "temporal_ambiguity": 5,
               "motion_complexity": 5, "linguistic_ambiguity": 5}
    return {**record, "difficulty": {"ratings": ratings, "D": d, "level": LEVEL_OF_D[d], "rater": "rater-7b"},
            "ground_truth": {**record["ground_truth"], "difficulty": d}}


@pytest.fixture(scope="module")
def rated_set(tmp_path_factory) -> tuple[Path, dict[str, float]]:
    """Built KTG samples with D stored in six training records; returns the file and {id: D}."""
    tmp = tmp_path_factory.mktemp("rated")
    cfg = DataConfig(format="synthetic", root=str(tmp / "syn"), task="ktg", input_size=[32, 40],
                     synthetic=SyntheticConfig(**SYN), max_samples=14)
    build_samples(cfg, tmp / "ktg.jsonl", reward="videoseg_r1", progress=False)
    records = [json.loads(line) for line in (tmp / "ktg.jsonl").read_text().splitlines()]
    train = [i for i, r in enumerate(records) if r["split"] == "train"]
    assert len(train) >= len(STORED_D) + 2
    stored = {}
    for i, d in zip(train[1:], STORED_D):
        records[i] = _rated(records[i], d)
        stored[records[i]["id"]] = d
    path = tmp / "difficulty.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, stored


def _cfg(path: Path, *overrides: str):
    return load_config(["reward.name=videoseg_r1", "data.task=ktg", f"data.samples_path={path}", *overrides])


def _score(record: dict, cfg) -> dict[str, float]:
    return compute("videoseg_r1", RESPONSE, record["ground_truth"], params=cfg.reward.params.videoseg_r1,
                   think_tokens=USED, use_default_models=False)


def test_the_token_budget_follows_the_stored_level(rated_set):
    path, stored = rated_set
    cfg = _cfg(path)
    p = cfg.reward.params.videoseg_r1
    assert (p.tau_easy, p.tau_hard, p.budget_easy, p.budget_medium, p.budget_hard) == (4.0, 7.0, 128, 256, 384)
    train = prepare_data(cfg).train
    budgets = {}
    for record in train:
        d = stored.get(record["id"])
        r = _score(record, cfg)
        level = LEVEL_OF_D[d] if d is not None else "medium"        # default_difficulty 5.0 is medium
        assert r["token_budget"] == BUDGET[level], (record["id"], d)
        assert r["length_scale"] == pytest.approx(SCALE[level])
        assert r["difficulty"] == (d if d is not None else 5.0)
        budgets.setdefault(level, set()).add(r["token_budget"])
    assert budgets == {"easy": {128}, "medium": {256}, "hard": {384}}     # three levels, three budgets


def test_a_record_without_difficulty_gets_the_default_budget(rated_set):
    path, stored = rated_set
    cfg = _cfg(path, "reward.params.videoseg_r1.default_difficulty=8.0")   # a hard default
    train = prepare_data(cfg).train
    plain = [r for r in train if r["id"] not in stored]
    rated = [r for r in train if r["id"] in stored and LEVEL_OF_D[stored[r["id"]]] == "easy"]
    assert plain and rated
    assert {_score(r, cfg)["token_budget"] for r in plain} == {384}
    assert {_score(r, cfg)["token_budget"] for r in rated} == {128}          # a stored D wins over the default


def test_missing_difficulties_are_logged_once_with_the_counts(rated_set, caplog):
    path, stored = rated_set
    with caplog.at_level(logging.INFO, logger="rl.difficulty_check"):
        train = prepare_data(_cfg(path)).train
    missing = len(train) - len(stored)
    mine = [r for r in caplog.records if r.name == "rl.difficulty_check"]
    warnings = [r.getMessage() for r in mine if r.levelno == logging.WARNING]
    assert warnings == [f"{missing} of {len(train)} training samples carry no task difficulty (run `python -m "
                        "launch.annotate difficulty`); they use reward.params.videoseg_r1.default_difficulty = 5.0"]
    infos = [r.getMessage() for r in mine if r.levelno == logging.INFO]
    assert infos == [f"task difficulty stored for 6 of {len(train)} training samples: easy 2, medium 2, hard 2 "
                     "(tau_easy 4.0, tau_hard 7.0)"]


def test_no_warning_when_every_sample_is_rated_nothing_when_the_reward_reads_no_difficulty(rated_set, caplog):
    path, stored = rated_set
    cfg = _cfg(path)
    train = [r for r in prepare_data(cfg).train if r["id"] in stored]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rl.difficulty_check"):
        cov = log_difficulty_coverage(cfg, train)
        assert (cov.total, cov.missing, cov.levels) == (6, 0, {"easy": 2, "medium": 2, "hard": 2})
        assert [r.levelname for r in caplog.records] == ["INFO"]
        caplog.clear()
        quickstart = load_config(["recipe=quickstart"])          # dense_grounding: no difficulty
        assert log_difficulty_coverage(quickstart, [{"ground_truth": {}}] * 3) is None
        assert not caplog.records


@pytest.mark.parametrize("d, level", [(3.999, "easy"), (4.0, "medium"), (6.999, "medium"), (7.0, "hard")])
def test_the_counted_level_is_the_level_of_the_token_budget(d, level):
    from rewards.params import VideoSegR1Params
    from rewards.videoseg_r1 import token_budget

    p = VideoSegR1Params()
    gt = {"difficulty": d}
    cov = log_difficulty_coverage(load_config(["reward.name=videoseg_r1"]), [{"ground_truth": gt}])
    assert cov.levels == {**dict.fromkeys(BUDGET, 0), level: 1}
    assert token_budget(d, p) == BUDGET[level]
