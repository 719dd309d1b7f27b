"""Asynchronous generation on a real local Ray: rollout workers stream whole GRPO groups back
while later groups are still generating, and the pieces join to the full batch."""

from __future__ import annotations

import time

import pytest

from rl.config import TinyModelConfig, load_config
from tests.ray_helpers import local_ray_cluster

pytestmark = pytest.mark.slow


def test_rollout_group_streams_groups_before_generation_ends(tmp_path):
    import numpy as np

    from rl.models.tiny import build_tiny_qwen25vl
    from rl.placement import PlacementPlan
    from rl.rollout.base import SamplingParams
    from rl.workers.rollout_group import RolloutGroup

    model_dir = build_tiny_qwen25vl(tmp_path / "policy", TinyModelConfig(), image_size=112)
    cfg = load_config(["recipe=quickstart", "cluster=local_cpu", "cluster.rollout.num_workers=2",
                       "rollout.micro_batch_size=1", "rollout.max_response_length=16"])
    rng = np.random.default_rng(0)
    prompts = [{"prompt": f"Find object {i}.", "images": [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)]}
               for i in range(6)]
    params = SamplingParams(n=2, temperature=1.0, max_tokens=16, stop=[], seed=3)
    with local_ray_cluster(num_cpus=4):
        plan = PlacementPlan(cfg.cluster, {"rollout": 2})
        plan.create()
        group = RolloutGroup(cfg.rollout, str(model_dir), plan, model_cfg=cfg.model)
        try:
            arrivals: list[tuple[int, int, float]] = []
            start = time.monotonic()
            pieces, busy = group.generate(
                prompts, params, on_groups=lambda first, out: arrivals.append((first, out.num_prompts, time.monotonic())))
            end = time.monotonic()
            whole, _ = group.generate(prompts, params)
        finally:
            group.shutdown()
            plan.remove()
    # one piece per micro-batch (one prompt), each reported once; worker 0 has prompts 0-2, worker 1 3-5
    assert sorted((f, k) for f, k, _ in arrivals) == [(i, 1) for i in range(6)]
    assert [p.num_prompts for p in pieces] == [1] * 6 and 0 < busy <= end - start
    # each worker's pieces come in its prompt order, and the first ones arrive well before the end
    for block in ([0, 1, 2], [3, 4, 5]):
        times = [t for f, _, t in arrivals if f in block]
        assert [f for f, _, _ in arrivals if f in block] == block
        assert times[0] < start + 0.8 * (end - start), (arrivals, start, end)
    # a fixed seed gives the same batch again: streaming does not change what is sampled
    assert [p.token_ids for p in whole] == [p.token_ids for p in pieces]
