"""Multi-node placement: simulated Ray strategies, node_resource pins, feasibility errors, trial reservations."""

from __future__ import annotations

import pytest

from rl.config import ClusterConfig, ConfigError, PoolConfig, load_config
from rl.placement import PlacementPlan, Reservation, reserved_bundles, roles_for, trial_bundles, trial_strategy
from rl.placement_sim import PlacementError, node_resource_names, simulate


def _cluster(nodes: int, gpus: int, cpus: int | None = None, **pools: PoolConfig) -> ClusterConfig:
    return ClusterConfig(name="t", nodes=nodes, devices_per_node=gpus, cpus_per_node=cpus, **pools)


def test_pack_uses_one_node_when_it_fits_and_fills_nodes_in_order_otherwise():
    fits = _cluster(2, 8, actor=PoolConfig(num_workers=4, gpus_per_worker=1, strategy="PACK"))
    assert simulate(PlacementPlan(fits, {"actor": 4})).bundle_nodes["actor"] == [0, 0, 0, 0]
    spills = _cluster(2, 8, actor=PoolConfig(num_workers=12, gpus_per_worker=1, strategy="PACK"))
    assert simulate(PlacementPlan(spills, {"actor": 12})).bundle_nodes["actor"] == [0] * 8 + [1] * 4


def test_strict_pack_that_needs_two_nodes_is_an_error_naming_the_pool():
    cluster = _cluster(2, 8, rollout=PoolConfig(num_workers=12, gpus_per_worker=1, strategy="STRICT_PACK"))
    with pytest.raises(PlacementError, match="pool 'rollout'.*STRICT_PACK"):
        simulate(PlacementPlan(cluster, {"rollout": 12}))


def test_spread_strategies_put_bundles_on_different_nodes():
    spread = _cluster(3, 2, reward=PoolConfig(num_workers=4, gpus_per_worker=0.5, strategy="SPREAD"))
    assert simulate(PlacementPlan(spread, {"reward": 4})).bundle_nodes["reward"] == [0, 1, 2, 0]
    strict = _cluster(3, 2, reward=PoolConfig(num_workers=3, gpus_per_worker=0.5, strategy="STRICT_SPREAD"))
    assert sorted(simulate(PlacementPlan(strict, {"reward": 3})).bundle_nodes["reward"]) == [0, 1, 2]
    too_many = _cluster(2, 2, reward=PoolConfig(num_workers=3, gpus_per_worker=0.5, strategy="STRICT_SPREAD"))
    with pytest.raises(PlacementError, match="pool 'reward'.*STRICT_SPREAD"):
        simulate(PlacementPlan(too_many, {"reward": 3}))


def test_more_gpus_than_nodes_times_devices_is_an_error_naming_the_pool():
    cluster = _cluster(
        1, 8,
        actor=PoolConfig(num_workers=4, gpus_per_worker=1),
        rollout=PoolConfig(num_workers=4, gpus_per_worker=1),
        reward=PoolConfig(num_workers=2, gpus_per_worker=1),
    )
    with pytest.raises(PlacementError) as info:
        simulate(PlacementPlan(cluster, {"actor": 4, "rollout": 4, "reward": 2}))
    message = str(info.value)
    assert "pool 'reward'" in message and "needs 2 GPU" in message and "only 0 of 8" in message


def test_cpus_are_checked_against_cpus_per_node():
    cluster = _cluster(2, 0, cpus=4, actor=PoolConfig(num_workers=3, cpus_per_worker=2))
    assert simulate(PlacementPlan(cluster, {"actor": 3})).bundle_nodes["actor"] == [0, 0, 1]
    small = _cluster(1, 0, cpus=4, actor=PoolConfig(num_workers=3, cpus_per_worker=2))
    with pytest.raises(PlacementError, match="pool 'actor'.*CPU"):
        simulate(PlacementPlan(small, {"actor": 3}))


def test_node_resource_pins_pools_to_the_nodes_that_carry_it():
    cluster = _cluster(
        2, 8,
        actor=PoolConfig(num_workers=2, gpus_per_worker=1, node_resource="node_gen"),
        rollout=PoolConfig(num_workers=2, gpus_per_worker=1, node_resource="node_train"),
    )
    cluster.node_resources = ["node_train", "node_gen"]
    placed = simulate(PlacementPlan(cluster, {"actor": 2, "rollout": 2}))
    assert placed.bundle_nodes == {"actor": [1, 1], "rollout": [0, 0]}
    # Without an explicit list, pinned names go to nodes 0, 1, ... in the order pools are created.
    cluster.node_resources = []
    assert node_resource_names(cluster, PlacementPlan(cluster, {"actor": 2, "rollout": 2})) == ["node_gen", "node_train"]


def test_a_pin_no_node_carries_is_an_error():
    cluster = _cluster(2, 8, rollout=PoolConfig(num_workers=1, gpus_per_worker=1, node_resource="node_x"))
    cluster.node_resources = ["node_train", "node_gen"]
    with pytest.raises(PlacementError, match="pool 'rollout'.*node_x"):
        simulate(PlacementPlan(cluster, {"rollout": 1}))


def test_two_node_gpu_layout_puts_training_on_node_0_and_generation_on_node_1():
    cfg = load_config(["recipe=videoseg_r1", "cluster=2x8gpu", "eval.freq=10"])
    placed = simulate(PlacementPlan(cfg.cluster, roles_for(cfg)))
    assert placed.role_nodes("actor") == [0] * 8 and placed.role_nodes("reference") == [0] * 8
    for role in ("rollout", "reward", "evaluator"):
        assert set(placed.role_nodes(role)) == {1}, role
    text = placed.format()
    assert "simulated" in text and "node 0 [node_train]" in text and "GPU 8/8" in text


def test_roles_follow_the_config():
    cfg = load_config(["recipe=quickstart", "eval.freq=0"])
    assert roles_for(cfg)["reference"] == cfg.cluster.reference.num_workers and roles_for(cfg)["evaluator"] == 0
    no_kl = load_config(["recipe=quickstart", "actor.use_kl_loss=false", "eval.freq=5"])
    assert roles_for(no_kl)["reference"] == 0 and roles_for(no_kl)["evaluator"] == no_kl.cluster.evaluator.num_workers


def test_bad_strategy_is_an_error_naming_the_key():
    cluster = _cluster(1, 0, actor=PoolConfig(num_workers=1, strategy="PACKED"))
    with pytest.raises(ConfigError, match="cluster.actor.strategy"):
        PlacementPlan(cluster, {"actor": 1})


def test_trial_bundles_reserve_every_pool_after_the_driver_bundle():
    cfg = load_config(["recipe=quickstart", "cluster=local_cpu"])
    plan = PlacementPlan(cfg.cluster, roles_for(cfg))
    bundles, reservation = trial_bundles(plan, {"CPU": 1.0})
    expected = [{"CPU": 1.0}] + [b for pool in plan.pools.values() for b in pool.bundles]
    assert bundles == expected
    offset = 1
    for name, pool in plan.pools.items():
        assert reservation.offsets[name] == offset
        offset += len(pool.bundles)
    assert trial_strategy(plan) == "PACK"


def test_a_plan_created_under_a_reservation_uses_the_reserved_bundles():
    cfg = load_config(["recipe=quickstart", "cluster=local_cpu"])
    layout = PlacementPlan(cfg.cluster, roles_for(cfg))
    _, reservation = trial_bundles(layout, {"CPU": 1.0})
    sentinel = object()
    plan = PlacementPlan(cfg.cluster, roles_for(cfg))
    with reserved_bundles(Reservation(sentinel, reservation.offsets, reservation.bundles)):
        plan.create()
    for role, slot in plan.slots.items():
        for i in range(slot.num_workers):
            strategy = plan.actor_options(role, i)["scheduling_strategy"]
            assert strategy.placement_group is sentinel
            assert strategy.placement_group_bundle_index == reservation.offsets[slot.pool] + i
    plan.remove()  # must not try to remove the borrowed group


def test_a_pool_missing_from_the_reservation_is_an_error():
    cfg = load_config(["recipe=quickstart", "cluster=local_cpu"])
    plan = PlacementPlan(cfg.cluster, {"actor": 2, "evaluator": 1})
    with reserved_bundles(Reservation(object(), {"actor": 1}, {"actor": [{"CPU": 1.0}] * 2})):
        with pytest.raises(ConfigError, match="pool 'evaluator'"):
            plan.create()
