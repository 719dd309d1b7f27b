"""Reward pool on a real local Ray: results in order, a killed worker loses no sample, a sample the
reward cannot score is not retried (the run stops, or the group is skipped and counted), and a user
reward is loaded from its file inside the workers."""

from __future__ import annotations

import json
import textwrap

import pytest

from rewards import compute
from rl.config import RewardConfig
from tests.ray_helpers import local_ray_cluster

pytestmark = pytest.mark.slow

GT = {"objects": [{"bbox_2d": [10, 10, 40, 40], "point_2d": [25, 25]}]}


def _response(x1: int) -> str:
    answer = [{"bbox_2d": [x1, 10, 40, 40], "point_2d": [25, 25]}]
    return f"<think>shape at left.</think><answer>{json.dumps(answer)}</answer>"


@pytest.fixture
def local_ray():
    with local_ray_cluster(num_cpus=4) as ray:
        yield ray


def _groups(num_groups: int, n: int):
    return [([_response(10 + g + k) for k in range(n)], GT, [20] * n) for g in range(num_groups)]


def test_scores_come_back_in_group_order_and_match_compute(local_ray):
    from rl.workers.reward_pool import RewardPool

    pool = RewardPool(RewardConfig(name="visionreasoner"), [{"num_cpus": 0.5}] * 2)
    try:
        groups = _groups(5, 3)
        results = pool.collect(pool.submit(groups))
        for (responses, gt, _), scored in zip(groups, results):
            assert [r["score"] for r in scored] == [compute("visionreasoner", t, gt)["score"] for t in responses]
    finally:
        pool.shutdown()


def test_killed_reward_worker_is_restarted_and_no_sample_is_lost(local_ray):
    from rl.workers.reward_pool import RewardPool

    pool = RewardPool(RewardConfig(name="visionreasoner", max_retries=2), [{"num_cpus": 0.5}] * 2)
    try:
        groups = _groups(8, 4)
        pending = pool.submit(groups)
        local_ray.kill(pool.workers[0], no_restart=True)      # dies with groups 0, 2, 4, 6 in flight
        results = pool.collect(pending)
        assert pending.restarts == 1 and pending.failures == 0
        assert [len(r) for r in results] == [4] * 8
        for (responses, gt, _), scored in zip(groups, results):
            assert [r["score"] for r in scored] == [compute("visionreasoner", t, gt)["score"] for t in responses]
            assert all("reward_failed" not in r for r in scored)
        # The restarted worker serves the next step.
        assert len(pool.collect(pool.submit(_groups(2, 2)))) == 2
    finally:
        pool.shutdown()


USER_REWARD = """
def score(response, sample, scale=1.0):
    return {"score": scale * len(response), "chars": len(response)}


def flaky(response, sample):
    if sample["ground_truth"].get("flaky"):
        raise RuntimeError("the scoring service is down")     # not a sample error: retried
    return {"score": 1.0}
"""


@pytest.fixture
def user_reward(tmp_path):
    path = tmp_path / "user_reward.py"
    path.write_text(textwrap.dedent(USER_REWARD))
    return path


def test_group_that_keeps_failing_is_marked_not_dropped(local_ray, user_reward):
    from rewards.config import RewardConfig as Section
    from rl.workers.reward_pool import RewardPool

    cfg = Section(function=f"{user_reward}:flaky", max_retries=1, timeout_s=60)
    pool = RewardPool(cfg, [{"num_cpus": 0.5}])
    try:
        flaky = {"id": "flaky", "ground_truth": dict(GT, flaky=True)}       # raises on every attempt
        pending = pool.submit([(["<think>a</think><answer>[]</answer>"] * 3, flaky, [5] * 3)] + _groups(1, 3))
        results = pool.collect(pending)
        assert pending.failures == 1 and pending.tasks[0].attempts == 2     # first try + 1 retry
        assert results[0] == [{"score": 0.0, "reward_failed": 1.0}] * 3
        assert results[1] == [{"score": 1.0}] * 3
    finally:
        pool.shutdown()


def _mismatched_groups():
    """Group 1's record is an AKS sample: the grounding reward cannot score it (no 'objects')."""
    aks = {"id": "synthetic/v3/e1/aks/A", "task": "aks", "ground_truth": {"answer": "A"}}
    return [_groups(1, 3)[0], (["<think>a</think><answer>A</answer>"] * 3, aks, [5] * 3), _groups(1, 3)[0]]


def test_sample_the_reward_cannot_score_stops_at_once_naming_it(local_ray):
    from rewards.config import RewardConfig as Section
    from rewards.errors import InvalidSampleError
    from rl.workers.reward_pool import RewardPool

    pool = RewardPool(Section(name="visionreasoner", max_retries=2), [{"num_cpus": 0.5}] * 2)
    try:
        pending = pool.submit(_mismatched_groups())
        with pytest.raises(InvalidSampleError) as info:
            pool.collect(pending)
        assert str(info.value) == ("reward 'visionreasoner' cannot score sample 'synthetic/v3/e1/aks/A': "
                                   "ground truth for 'visionreasoner' lacks key 'objects'")
        assert info.value.key == "objects"
        assert pending.tasks[1].attempts == 1 and pending.restarts == 0   # not retried like a dead worker
    finally:
        pool.shutdown()


def test_skip_scores_the_invalid_group_zero_and_counts_it(local_ray):
    from rewards.config import RewardConfig as Section
    from rl.workers.reward_pool import RewardPool

    pool = RewardPool(Section(name="visionreasoner", on_invalid_sample="skip"), [{"num_cpus": 0.5}] * 2)
    try:
        groups = _mismatched_groups()
        pending = pool.submit(groups)
        results = pool.collect(pending)
        assert results[1] == [{"score": 0.0, "invalid_sample": 1.0}] * 3
        assert pending.invalid == 3 and pending.failures == 0 and pending.restarts == 0
        assert pending.tasks[1].attempts == 1
        for g in (0, 2):
            responses, gt, _ = groups[g]
            assert [r["score"] for r in results[g]] == [compute("visionreasoner", t, gt)["score"] for t in responses]
    finally:
        pool.shutdown()


def test_user_reward_is_loaded_from_its_file_in_the_workers(local_ray, user_reward, monkeypatch):
    from rewards.config import RewardConfig as Section
    from rl.workers.reward_pool import RewardPool

    monkeypatch.chdir(user_reward.parent)               # a relative path: resolved in the driver
    pool = RewardPool(Section(function="user_reward.py:score", function_kwargs={"scale": 2}),
                      [{"num_cpus": 0.5}] * 2)
    try:
        groups = _groups(3, 2)
        results = pool.collect(pool.submit(groups))
        for (responses, _, _), scored in zip(groups, results):
            assert scored == [{"score": 2.0 * len(t), "chars": float(len(t))} for t in responses]
    finally:
        pool.shutdown()


def test_groups_submitted_piece_by_piece_out_of_order_come_back_in_position_order(local_ray):
    """Asynchronous generation hands the pool pieces of a batch in the order the rollout
    workers finish them; collect() still returns position order, and a gap or a position
    given twice is an error."""
    from rl.workers.reward_pool import RewardPool

    pool = RewardPool(RewardConfig(name="visionreasoner"), [{"num_cpus": 0.5}] * 2)
    try:
        groups = _groups(5, 2)
        pending = pool.submit([])
        for first, last in [(3, 5), (0, 1), (1, 3)]:
            pool.submit(groups[first:last], pending, first_index=first)
        results = pool.collect(pending)
        for (responses, gt, _), scored in zip(groups, results):
            assert [r["score"] for r in scored] == [compute("visionreasoner", t, gt)["score"] for t in responses]
        with pytest.raises(ValueError, match="submitted twice"):
            pool.submit(groups[:1], pending, first_index=4)
        gap = pool.submit(groups[:1], first_index=1)
        with pytest.raises(ValueError, match="do not cover"):
            pool.collect(gap)
    finally:
        pool.shutdown()
