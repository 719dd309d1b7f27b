"""Reward pool on a real local Ray: results in order, and a killed worker loses no sample."""

from __future__ import annotations

import json

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


def test_group_that_keeps_failing_is_marked_not_dropped(local_ray):
    from rl.workers.reward_pool import RewardPool

    pool = RewardPool(RewardConfig(name="visionreasoner", max_retries=1, timeout_s=60), [{"num_cpus": 0.5}])
    try:
        bad_gt = {"objects": "not a list"}          # the reward rejects this ground truth every time
        pending = pool.submit([(["<think>a</think><answer>[]</answer>"] * 3, bad_gt, [5] * 3)] + _groups(1, 3))
        results = pool.collect(pending)
        assert pending.failures == 1
        assert results[0] == [{"score": 0.0, "reward_failed": 1.0}] * 3
        assert all("reward_failed" not in r for r in results[1])
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
