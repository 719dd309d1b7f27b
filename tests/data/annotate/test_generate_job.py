"""The ``generate`` job: one scored row per response, rows rescored identically by ``rewards.score``."""

from __future__ import annotations

import copy
import io
import json

from data.annotate.generate import GenerateJob
from data.annotate.job import Outcome
from rewards.parsing import extract_answer
from rewards.registry import max_score
from rewards.score import run, score_line
from rl.config import Config
from tests.data.annotate.annotate_helpers import build_records


def _cfg(**generate) -> Config:
    cfg = Config()
    for key, value in generate.items():
        setattr(cfg.annotate.generate, key, value)
    return cfg


def _answers(sample: dict) -> list[str]:
    target = sample["sft_target"]
    one = json.dumps(json.loads(extract_answer(target))[:1])
    return [target, target.split("<answer>")[0] + f"<answer>{one}</answer>", "no idea", target + " trailing"]


def test_request_never_changes_with_the_attempt(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    job = GenerateJob(_cfg(n=4, temperature=0.6), "gen")
    first = job.request({**sample, "system": "sys"}, 0)
    assert (first.n, first.temperature) == (4, 0.6)
    assert first.prompt == {"prompt": sample["prompt"], "images": sample["images"], "system": "sys"}
    assert job.request({**sample, "system": "sys"}, 3) == first


def test_one_row_per_response_every_answer_kept(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    before = copy.deepcopy(sample)
    job = GenerateJob(_cfg(n=4), "gen-model")
    answers = _answers(sample)
    outcome = job.judge(sample, answers)
    assert outcome.status == "done"
    rows = job.rows(sample, outcome)
    assert sample == before                                   # the input is not modified
    assert [r["response"] for r in rows] == answers and [r["response_index"] for r in rows] == [0, 1, 2, 3]
    # visionreasoner by hand: exact 7; one of two objects 1 + 2 + 1.5 + 1; no tags 0 + 0 + 0 + 1;
    # text after </answer> breaks the think format only: 0 + 2 + 3 + 1
    assert [r["rewards"]["score"] for r in rows] == [7.0, 5.5, 1.0, 6.0]
    for row in rows:
        assert (row["reward_name"], row["generator"]) == ("visionreasoner", "gen-model")
        assert {k: row[k] for k in sample} == sample          # every sample field is kept
        assert set(row) == set(sample) | {"response", "response_index", "rewards", "reward_name", "generator",
                                          "params"}
    assert max(r["rewards"]["score"] for r in rows) == max_score("visionreasoner")


def _rescore(rows: list[dict], path, use_models: bool) -> list[dict]:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [score_line(line, rows[0]["reward_name"], {}, use_models) for line in path.read_text().splitlines()]


def test_rows_rescore_identically_with_their_params(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    cfg = _cfg(n=4)
    cfg.reward.params.visionreasoner.weight_accuracy = 2.0      # non-default params travel with the rows
    cfg.reward.params.visionreasoner.point_threshold = 0.5
    job = GenerateJob(cfg, "g")
    rows = job.rows(sample, job.judge(sample, _answers(sample)))
    assert rows[0]["params"]["weight_accuracy"] == 2.0
    rescored = _rescore(rows, tmp_path / "rows.jsonl", use_models=False)
    assert rescored == [r["rewards"] for r in rows]
    # the params matter: without them the scores differ
    bare = [score_line(json.dumps({k: v for k, v in r.items() if k != "params"}), "visionreasoner", {}, False)
            for r in rows]
    assert [b["score"] for b in bare] != [r["rewards"]["score"] for r in rows]
    out = io.StringIO()
    assert run("visionreasoner", tmp_path / "rows.jsonl", {}, False, True, out) == 0
    assert "4 scored, 0 bad line(s)" in out.getvalue()


def test_nested_params_and_model_terms_rescore_identically(tmp_path):
    """videoseg_r1 (nested base params, a segmenter term): the CLI's default models are the job's default."""
    [sample] = build_records(tmp_path, "ktg", reward="videoseg_r1")
    cfg = _cfg(n=2)
    cfg.reward.params.videoseg_r1.base.alpha_iou = 1.0
    cfg.reward.params.videoseg_r1.budget_medium = 3           # the length factor bites
    job = GenerateJob(cfg, "g")
    rows = job.rows(sample, job.judge(sample, _answers(sample)[:2]))
    assert rows[0]["reward_name"] == "videoseg_r1" and rows[0]["params"]["base"]["alpha_iou"] == 1.0
    assert rows[0]["rewards"]["mask_iou_available"] == 1.0 and rows[0]["rewards"]["length_scale"] < 1.0
    assert _rescore(rows, tmp_path / "rows.jsonl", use_models=True) == [r["rewards"] for r in rows]


def test_aks_and_configured_reward(tmp_path):
    a, _ = build_records(tmp_path, "aks", exp_id="0")
    job = GenerateJob(_cfg(), "g")
    [row] = job.rows(a, job.judge(a, [a["sft_target"]]))
    assert (row["reward_name"], row["rewards"]["score"]) == ("rcot_aks", 3.0)
    ktg_only = GenerateJob(_cfg(reward="rcot_ktg"), "g")
    assert not ktg_only.wants(a) and ktg_only.wants({"task": "ktg"}) and GenerateJob(_cfg(), "g").wants(a)


def test_a_sample_the_reward_cannot_score_writes_no_row(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    broken = {**sample, "ground_truth": {"input_size": [48, 40]}}
    job = GenerateJob(_cfg(), "g")
    outcome = job.judge(broken, ["x"])
    assert (outcome.status, outcome.reason, outcome.raw) == ("failed", "invalid_sample", ["x"])
    assert job.rows(broken, outcome) == []
    assert job.rows(sample, Outcome("retry", reason="unparseable")) == []


def test_veason_rows_are_json_lines(tmp_path):
    [sample] = build_records(tmp_path, "veason")
    cfg = _cfg()
    cfg.reward.segmenter.backend = "oracle_box"
    job = GenerateJob(cfg, "g")
    [row] = job.rows(sample, job.judge(sample, [sample["sft_target"]]))
    assert json.loads(json.dumps(row)) == row and row["rewards"]["score"] == 5.0
