"""The ``cot`` job: trace parser, selection rule, hint prompts, and rejection sampling scored by the
real rewards on built synthetic samples (no model, no Ray)."""

from __future__ import annotations

import copy
import json

import pytest

from data.annotate.cot import CotJob, Trace, hint_block, parse_trace, select_trace
from data.annotate.job import Outcome
from rewards.parsing import extract_answer, extract_think, think_format_ok
from rewards.registry import compute_group
from rewards.vision.factory import default_propagator
from rewards.vision.oracle import BoxFillSegmenter
from rl.config import Config
from tests.data.annotate.annotate_helpers import build_records

# ------------------------------------------------------------------------- parser


@pytest.mark.parametrize("text, think, answer, repair", [
    ("<think>look</think><answer>A</answer>", "look", "A", ""),
    ("  <think> look \n</think>\n\n<answer> [1, 2] </answer>\n", "look", "[1, 2]", ""),
    ("<think>a. b.</think><answer>B</answer> Hope this helps!", "a. b.", "B", "trailing_text"),
    ("<think>a</think><answer>B</answer><|im_end|>", "a", "B", "trailing_text"),
    ('<think>a</think><answer>[{"bbox_2d": [1,2,3,4]', "a", '[{"bbox_2d": [1,2,3,4]', "unclosed_answer"),
])
def test_valid_and_repaired_traces(text, think, answer, repair):
    trace = parse_trace(text)
    assert trace == Trace(think, answer, repair)
    assert think_format_ok(trace.target)                       # the kept form passes the rewards' check
    assert (extract_think(trace.target), extract_answer(trace.target)) == (think, answer)


@pytest.mark.parametrize("text", [
    "",
    "A",
    "<answer>A</answer>",                                      # no think
    "Sure! <think>a</think><answer>A</answer>",                # text before <think>
    "<think>a<answer>A</answer>",                              # no </think>
    "<think>a</think>",                                        # no answer
    "<think>a</think> so: <answer>A</answer>",                 # text between the blocks
    "<think>  </think><answer>A</answer>",                     # empty think
    "<think>a</think><answer> </answer>",                      # empty answer
    "<think>a</think><answer>",                                # empty unclosed answer
    "<think>a<think>b</think></think><answer>A</answer>",      # nested think
    "<think>a</think><answer>A<answer>B</answer>",             # a tag inside the answer
    "<think>a</think><answer>A</answer><answer>B</answer>",    # a second answer block
    "<think>a</think><think>b</think><answer>A</answer>",      # a second think block
])
def test_garbage_traces_do_not_parse(text):
    assert parse_trace(text) is None


def test_non_text_does_not_parse():
    assert parse_trace(None) is None and parse_trace(b"<think>a</think><answer>A</answer>") is None


# ---------------------------------------------------------------------- selection


@pytest.mark.parametrize("scores, threshold, top, kept", [
    ([1.0, 5.0, 3.0], 0.5, 7.0, 1),
    ([5.0, 6.0, 6.0], 0.5, 7.0, 1),             # ties: the first
    ([None, 2.0, None], 0.0, 7.0, 1),           # unparseable traces are skipped
    ([3.5, 1.0], 0.5, 7.0, 0),                  # exactly threshold x max passes
    ([3.4999, 1.0], 0.5, 7.0, None),            # just under does not
    ([0.1 * 3, 0.0], 0.1, 3.0, 0),              # float rounding at the boundary (0.1 * 3 = 0.30000000000000004)
    ([1.0, 2.0], 0.5, 7.0, None),               # parseable, none passing
    ([None, None], 0.0, 7.0, None),             # nothing parses
    ([], 0.5, 7.0, None),
    ([-1.0, -2.0], 0.0, 7.0, None),             # best below 0 x max
    ([0.0], 0.0, 7.0, 0),                       # threshold 0 keeps a parseable 0
    ([7.0, 7.0], 1.0, 7.0, 0),
])
def test_select_trace(scores, threshold, top, kept):
    assert select_trace(scores, threshold, top) == kept


# ------------------------------------------------------------------ hints, requests


def _cfg(**cot) -> Config:
    cfg = Config()
    for key, value in cot.items():
        setattr(cfg.annotate.cot, key, value)
    cfg.annotate.retry_temperature = 0.7
    return cfg


def _hint_answer(prompt: str) -> str:
    return prompt.split("the correct answer is\n", 1)[1].split("\n", 1)[0]


def test_ktg_hint_gives_every_object_in_the_prompts_format(tmp_path):
    [plain] = build_records(tmp_path / "a", "ktg")
    [neg] = build_records(tmp_path / "b", "ktg", reward="videoseg_r1")
    objects = plain["ground_truth"]["objects"]
    assert len(objects) == 2
    assert json.loads(_hint_answer(hint_block(plain))) == [
        {"bbox_2d": o["bbox_2d"], "point_2d": o["point_2d"]} for o in objects]
    assert json.loads(_hint_answer(hint_block(neg))) == [
        {"bbox_2d": o["bbox_2d"], "point_2d": o["point_2d"], "neg_point_2d": o["neg_point_2d"]}
        for o in neg["ground_truth"]["objects"]]


def test_aks_and_veason_hints(tmp_path):
    a, b = build_records(tmp_path / "aks", "aks", exp_id="0")
    assert (a["ground_truth"]["answer"], b["ground_truth"]["answer"]) == ("A", "B")
    assert _hint_answer(hint_block(a)).startswith("A (") and _hint_answer(hint_block(b)).startswith("B (")
    [v] = build_records(tmp_path / "veason", "veason")
    gt = v["ground_truth"]
    assert json.loads(_hint_answer(hint_block(v))) == {"keyframe_timestamp": gt["keyframe"],
                                                      "bbox_2d_list": [o["bbox_2d"] for o in gt["objects"]]}


def test_request_is_the_task_prompt_plus_hints(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    job = CotJob(_cfg(k=3, temperature=0.8), "teacher")
    first, retry = job.request(sample, 0), job.request(sample, 1)
    assert (first.n, first.temperature, retry.n, retry.temperature) == (3, 0.8, 3, 0.7)
    assert first.prompt["prompt"] == sample["prompt"] + hint_block(sample)
    assert first.prompt["images"] == sample["images"] and "system" not in first.prompt
    bare = CotJob(_cfg(hints=False), "teacher").request({**sample, "system": "sys"}, 0).prompt
    assert bare == {"prompt": sample["prompt"], "images": sample["images"], "system": "sys"}


def test_wants_the_tasks_its_reward_scores():
    ktg, aks, veason = ({"task": t} for t in ("ktg", "aks", "veason"))
    job = CotJob(_cfg(), "t")
    assert job.wants(ktg) and job.wants(aks) and job.wants(veason) and not job.wants({"task": "other"})
    only_aks = CotJob(_cfg(reward="rcot_aks"), "t")
    assert only_aks.wants(aks) and not only_aks.wants(ktg) and not only_aks.wants(veason)


# ------------------------------------------------------------- scoring on real samples


def _swap_answer(trace: str, answer: str) -> str:
    return trace.split("<answer>")[0] + f"<answer>{answer}</answer>"


def test_ktg_keeps_the_best_passing_trace(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    before = copy.deepcopy(sample)
    gt_answer = extract_answer(sample["sft_target"])
    one = json.dumps(json.loads(gt_answer)[:1])
    answers = [
        "no tags at all",                                           # unparseable
        _swap_answer(sample["sft_target"], "[]"),                   # 1 + 0 + 0 + 1 = 2 < 3.5
        _swap_answer(sample["sft_target"], one),                    # 1 + 2 + 3/2 + 1 = 5.5
        f"<think>Two shapes are visible.</think><answer>{gt_answer}</answer>",   # 7 (first of the ties)
        sample["sft_target"] + "\n",                                # 7
    ]
    job = CotJob(_cfg(k=5), "teacher-x")
    outcome = job.judge(sample, answers)
    assert outcome.status == "done" and outcome.raw == answers
    assert outcome.fields == {"teacher_cot": {
        "target": answers[3], "score": 7.0, "max_score": 7.0, "teacher": "teacher-x", "reward": "visionreasoner",
        "k": 5, "passed": 3, "hints": True}}
    [row] = job.rows(sample, outcome)
    assert sample == before and "teacher_cot" not in sample
    assert row == {**sample, **outcome.fields}


def test_the_gt_target_scores_the_maximum_and_is_kept(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    outcome = CotJob(_cfg(k=2, threshold=1.0), "t").judge(sample, ["garbage", sample["sft_target"]])
    cot = outcome.fields["teacher_cot"]
    assert (cot["target"], cot["score"], cot["max_score"], cot["passed"]) == (sample["sft_target"], 7.0, 7.0, 1)


def test_verdicts_unparseable_below_threshold_invalid(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    job = CotJob(_cfg(), "t")
    garbage = ["", "the answer is [1,2,3,4]", "<answer>[]</answer>"]
    assert (job.judge(sample, garbage).status, job.judge(sample, garbage).reason) == ("retry", "unparseable")
    low = [_swap_answer(sample["sft_target"], "[]")]
    outcome = job.judge(sample, low)
    assert (outcome.status, outcome.reason, outcome.raw) == ("failed", "below_threshold", low)
    assert job.rows(sample, outcome) == [sample]
    # threshold 0 keeps the best parseable trace whatever its score
    kept = CotJob(_cfg(threshold=0.0), "t").judge(sample, low).fields["teacher_cot"]
    assert (kept["score"], kept["passed"]) == (2.0, 1)
    broken = {**sample, "ground_truth": {"input_size": [48, 40]}}      # no "objects"
    assert job.judge(broken, [sample["sft_target"]]).reason == "invalid_sample"


def test_aks_sample_scored_by_its_reward(tmp_path):
    _, b = build_records(tmp_path, "aks", exp_id="0")
    job = CotJob(_cfg(), "t")
    ok = job.judge(b, [_swap_answer(b["sft_target"], "A"), b["sft_target"]]).fields["teacher_cot"]
    assert (ok["target"], ok["score"], ok["max_score"], ok["reward"], ok["passed"]) == (
        b["sft_target"], 3.0, 3.0, "rcot_aks", 1)
    wrong = job.judge(b, [_swap_answer(b["sft_target"], "A")])      # format 1 + accuracy 0 = 1 < 1.5
    assert (wrong.status, wrong.reason) == ("failed", "below_threshold")


def test_configured_reward_replaces_the_samples_own(tmp_path):
    [sample] = build_records(tmp_path, "ktg")
    cot = CotJob(_cfg(reward="rcot_ktg"), "t").judge(sample, [sample["sft_target"]]).fields["teacher_cot"]
    assert (cot["reward"], cot["score"], cot["max_score"]) == ("rcot_ktg", 6.0, 6.0)


def test_veason_sample_scored_with_the_configured_segmenter(tmp_path):
    [sample] = build_records(tmp_path, "veason")
    cfg = _cfg()
    cfg.reward.segmenter.backend = "oracle_box"
    job = CotJob(cfg, "t")
    wrong_frame = _swap_answer(sample["sft_target"], json.dumps({"keyframe_timestamp": 99, "bbox_2d_list": []}))
    outcome = job.judge(sample, [wrong_frame, sample["sft_target"]])
    cot = outcome.fields["teacher_cot"]
    assert cot["target"] == sample["sft_target"] and cot["reward"] == "veason_r1" and cot["max_score"] == 5.0
    expected = compute_group("veason_r1", [sample["sft_target"]], sample["ground_truth"],
                             BoxFillSegmenter(), default_propagator())[0]["score"]
    assert cot["score"] == pytest.approx(expected, abs=1e-9)
    assert cot["score"] >= 4.0                 # think + format + keyframe + spatial exact; temporal tracked


def test_settings_are_json_and_name_the_scoring(tmp_path):
    settings = CotJob(_cfg(k=2), "t").settings()
    assert settings["cot"]["k"] == 2
    assert settings["scoring"]["params"]["visionreasoner"]["iou_threshold"] == 0.5
    json.dumps(settings)


def test_rows_of_a_retry_or_failure_are_the_sample():
    job = CotJob(_cfg(), "t")
    sample = {"id": "x", "task": "ktg"}
    assert job.rows(sample, Outcome("failed", reason="unparseable")) == [sample]
