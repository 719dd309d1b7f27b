import pytest

from rl.config import ClusterConfig, ConfigError, PoolConfig, load_config
from rl.placement import PlacementPlan


def test_colocated_roles_share_bundles_in_equal_parts():
    cluster = ClusterConfig(
        actor=PoolConfig(num_workers=4, cpus_per_worker=6, gpus_per_worker=1),
        reference=PoolConfig(num_workers=4, colocate_with="actor"),
        rollout=PoolConfig(num_workers=4, colocate_with="actor"),
        reward=PoolConfig(num_workers=2, cpus_per_worker=2, gpus_per_worker=0.5),
    )
    plan = PlacementPlan(cluster, {"actor": 4, "reference": 4, "rollout": 4, "reward": 2})
    assert set(plan.pools) == {"actor", "reward"}
    assert plan.pools["actor"].members == ["actor", "reference", "rollout"]
    for role in ("actor", "reference", "rollout"):
        assert plan.slots[role].gpus == pytest.approx(1 / 3)
        assert plan.slots[role].cpus == pytest.approx(2.0)
    assert plan.total_resources() == {"CPU": 28.0, "GPU": 5.0}


def test_disabled_role_takes_no_resources():
    cfg = load_config(["recipe=quickstart"])
    plan = PlacementPlan(cfg.cluster, {"actor": 2, "rollout": 1, "reference": 0, "reward": 2})
    assert "reference" not in plan.slots
    assert plan.total_resources()["CPU"] == 2 * 1.0 + 1.0 + 2 * 0.5


def test_colocating_with_a_missing_pool_is_an_error():
    cluster = ClusterConfig(reference=PoolConfig(num_workers=1, colocate_with="actor"))
    with pytest.raises(ConfigError, match="colocate_with"):
        PlacementPlan(cluster, {"reference": 1})


def test_node_resource_is_required_by_bundles():
    cluster = ClusterConfig(rollout=PoolConfig(num_workers=2, node_resource="node_gen"))
    plan = PlacementPlan(cluster, {"rollout": 2})
    assert all("node_gen" in b for b in plan.pools["rollout"].bundles)


def test_describe_names_every_role():
    cfg = load_config(["recipe=videoseg_r1"])
    plan = PlacementPlan(cfg.cluster, {"actor": 4, "reference": 4, "rollout": 2, "reward": 2})
    text = plan.describe()
    for role in ("actor", "reference", "rollout", "reward"):
        assert role in text
