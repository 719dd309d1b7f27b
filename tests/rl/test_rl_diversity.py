"""Collapse / diversity metrics (rl.diversity) on hand-made responses, and their place in reward_metrics."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rl.batch import RolloutBatch
from rl.metrics import reward_metrics
from rl.diversity import (distinct_per_group, group_metrics, is_grounding_record, is_valid_grounding_answer,
                          normalised_answer, validation_metrics, zero_variance_group_frac)

A = '[{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]'
A_SPACED = '[{"bbox_2d":  [1, 2, 3, 4],\n "point_2d": [2, 3]}]'      # the same answer, other whitespace
GROUP_0 = [
    f"<think>a</think><answer>{A}</answer>",
    f"<think>b</think><answer>{A_SPACED}</answer>",
    f"<think>a</think><answer>{A}</answer>",                           # the first response again
    "I do not know",                                                    # no answer block: answer ""
]
GROUP_1 = [
    '<answer>[{"bbox_2d": [5, 2, 3, 4], "point_2d": [4, 3]}]</answer>',  # x1 > x2
    "<answer>[]</answer>",                                               # empty list
    '<answer>[{"bbox_2d": [1, 2, 3, NaN], "point_2d": [1, 1]}]</answer>',  # not finite
    '<answer>[{"bbox_2d": [1, 2, 3, 4]}]</answer>',                      # no point
]
TEXTS = GROUP_0 + GROUP_1
GROUP_INDEX = [0] * 4 + [1] * 4
SCORES = [1.0, 1.0, 1.0, 0.0] + [0.1] * 4
KTG_1 = {"task": "ktg", "ground_truth": {"objects": [{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]}}
KTG_2 = {"task": "ktg", "ground_truth": {"objects": [{}, {}]}}
AKS = {"task": "aks", "ground_truth": {"answer": "A"}}


def test_normalised_answer_collapses_whitespace_and_missing_blocks_are_empty():
    assert normalised_answer(GROUP_0[0]) == normalised_answer(GROUP_0[1]) == A
    assert normalised_answer("I do not know") == normalised_answer("<answer>   </answer>") == ""
    assert normalised_answer(None) == ""


def test_distinct_counts_per_group_by_hand():
    # group 0: 3 distinct texts (one repeated), 2 distinct answers (A and ""); group 1: 4 and 4.
    assert distinct_per_group(TEXTS, GROUP_INDEX) == pytest.approx((3 + 4) / 2)
    assert distinct_per_group([normalised_answer(t) for t in TEXTS], GROUP_INDEX) == pytest.approx((2 + 4) / 2)
    assert distinct_per_group([], []) == 0.0
    # Groups are taken from group_index, not from positions: interleaved samples give the same counts.
    assert distinct_per_group(["x", "y", "x", "x"], [0, 1, 0, 1]) == pytest.approx((1 + 2) / 2)


def test_zero_variance_is_exact_equality_not_a_float_std():
    assert zero_variance_group_frac(SCORES, GROUP_INDEX) == 0.5
    # np.std([0.1] * 3) is 1.4e-17, not 0: such a group still has zero advantage.
    assert zero_variance_group_frac([0.1, 0.1, 0.1, 0.0, 1.0, 1.0], [0, 0, 0, 1, 1, 1]) == 0.5
    assert zero_variance_group_frac([], []) == 0.0


def test_valid_answer_rules():
    assert [is_valid_grounding_answer(t) for t in GROUP_0] == [True, True, True, False]
    assert not any(is_valid_grounding_answer(t) for t in GROUP_1)
    two = ('<answer>[{"bbox_2d": [0, 0, 9, 9], "point_2d": [1, 1]}, '
           '{"bbox_2d": [0, 5, 9, 5], "point_2d": [1, 5]}]</answer>')
    assert not is_valid_grounding_answer(two)                 # the second box has y1 == y2
    assert is_valid_grounding_answer(two.replace("[0, 5, 9, 5]", "[0, 5, 9, 6]"))
    assert not is_valid_grounding_answer('<answer>{"bbox_2d": [0, 0, 9, 9], "point_2d": [1, 1]}</answer>')  # not a list


def test_grounding_records_are_ktg_with_a_target():
    assert is_grounding_record(KTG_1) and is_grounding_record(KTG_2)
    assert not is_grounding_record(AKS)
    assert not is_grounding_record({"task": "ktg", "ground_truth": {"objects": []}})   # no target: [] is right


def test_group_metrics_by_hand():
    m = group_metrics(TEXTS, SCORES, GROUP_INDEX, [True] * 8)
    assert m == pytest.approx({"diversity/distinct_responses_per_group": 3.5,
                               "diversity/distinct_answers_per_group": 3.0,
                               "diversity/zero_variance_group_frac": 0.5,
                               "diversity/valid_answer_frac": 3 / 8})
    # Group 1 is an AKS group: valid answers are counted on group 0 only; no grounding sample: left out.
    assert group_metrics(TEXTS, SCORES, GROUP_INDEX, [True] * 4 + [False] * 4)["diversity/valid_answer_frac"] == 0.75
    assert "diversity/valid_answer_frac" not in group_metrics(TEXTS, SCORES, GROUP_INDEX, [False] * 8)


def test_validation_metrics_distinct_answer_fraction():
    texts = [GROUP_0[0], GROUP_0[1], GROUP_1[0], GROUP_0[3]]   # answers A, A, B, "": 3 distinct of 4 queries
    m = validation_metrics(texts, [0, 1, 2, 3], [True] * 4)
    assert m == pytest.approx({"val/diversity/distinct_answer_frac": 0.75, "val/diversity/valid_answer_frac": 0.5})
    collapsed = validation_metrics([GROUP_0[0]] * 4, [0, 1, 2, 3], [False] * 4)
    assert collapsed == {"val/diversity/distinct_answer_frac": 0.25}
    # val_n = 2: the first response of each query counts for the distinct fraction.
    m2 = validation_metrics([GROUP_0[0], GROUP_1[0], GROUP_0[0], GROUP_1[1]], [0, 0, 1, 1], [True] * 4)
    assert m2["val/diversity/distinct_answer_frac"] == 0.5 and m2["val/diversity/valid_answer_frac"] == 0.5


def test_reward_metrics_logs_diversity_and_solve_none_or_all_once():
    batch = RolloutBatch(records=[KTG_1, AKS], n=4, group_index=GROUP_INDEX, response_ids=[[1, 2]] * 8,
                         response_texts=TEXTS, rollout_log_probs=[[0.0, 0.0]] * 8, finish_reasons=["stop"] * 8)
    batch.set_rewards([[{"score": s} for s in SCORES[:4]], [{"score": s} for s in SCORES[4:]]])
    encoded = SimpleNamespace(response_mask=torch.ones(8, 2), attention_mask=torch.ones(8, 5))
    m = reward_metrics(batch, encoded, torch.zeros(8, 2), max_response_length=2)
    assert m["critic/solve_none_or_all"] == m["diversity/zero_variance_group_frac"] == 0.5
    assert m["diversity/distinct_responses_per_group"] == 3.5 and m["diversity/distinct_answers_per_group"] == 3.0
    assert m["diversity/valid_answer_frac"] == 0.75            # the AKS group is left out
