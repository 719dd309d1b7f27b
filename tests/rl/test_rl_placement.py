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


PAPER_RECIPES = ("videoseg_r1", "rcot_ktg", "rcot_aks", "veason_r1")
GPU_CLUSTERS = ("1x4gpu", "1x8gpu", "2x8gpu")


@pytest.mark.parametrize("cluster", GPU_CLUSTERS)
@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_every_gpu_cluster_gives_the_paper_recipes_evaluator_a_gpu_and_fits(recipe, cluster):
    from rl.placement import roles_for
    from rl.placement_sim import simulate

    cfg = load_config([f"recipe={recipe}", f"cluster={cluster}"])
    plan = PlacementPlan(cfg.cluster, roles_for(cfg))
    slot = plan.slots["evaluator"]
    assert slot.num_workers == 1 and slot.gpus > 0, "the evaluator runs the policy, SAM2 and the propagator on a GPU"
    placed = simulate(plan)                                       # raises PlacementError when a pool does not fit
    gpus_used = sum(node.used.get("GPU", 0.0) for node in placed.nodes)
    assert gpus_used == pytest.approx(plan.total_resources()["GPU"])
    assert gpus_used <= cfg.cluster.nodes * cfg.cluster.devices_per_node


def test_on_4_gpus_the_evaluator_shares_gpu_0_with_the_actor():
    cfg = load_config(["recipe=rcot_ktg", "cluster=1x4gpu"])
    from rl.placement import roles_for

    plan = PlacementPlan(cfg.cluster, roles_for(cfg))
    assert plan.pools["actor"].members == ["actor", "rollout", "reference", "evaluator"]
    assert plan.slots["evaluator"].gpus == pytest.approx(1 / 4) and plan.total_resources()["GPU"] == 4.0


def test_role_notes_say_what_the_evaluator_does_or_why_a_role_is_not_placed():
    from rl.placement import role_notes

    notes = role_notes(load_config(["recipe=videoseg_r1"]))
    assert notes[0].startswith("  evaluator: every 100 steps (eval.freq), at step 0,")
    assert "sampler hierarchical" in notes[0] and "propagator xmem" in notes[0] and "sam2 on cuda" in notes[0]
    assert "/data/mevis (mevis, split valid_u), all videos" in notes[1]
    notes = role_notes(load_config(["recipe=quickstart", "eval.freq=0", "actor.use_kl_loss=false",
                                    "trainer.val_before_train=false"]))
    assert notes == ["  reference: not placed (no KL loss: actor.use_kl_loss = false or actor.kl_loss_coef = 0)",
                     "  evaluator: not placed (eval.freq = 0)"]
    notes = role_notes(load_config(["recipe=quickstart", "trainer.val_before_train=false", "eval.max_videos=3"]))
    assert notes[0].startswith("  evaluator: every 50 steps (eval.freq), and at the last step; sampler oracle")
    assert notes[1].endswith("(synthetic, split valid), at most 3 videos")


@pytest.mark.parametrize("cluster, shared", [("local_cpu", False), ("local_2node", False), ("1x4gpu", True),
                                             ("1x8gpu", True), ("2x8gpu", True)])
def test_groups_start_at_once_only_when_no_pool_holds_several_roles(cluster, shared):
    from rl.groups import build_placement, shares_devices

    plan = build_placement(load_config(["recipe=quickstart", f"cluster={cluster}"]))
    assert shares_devices(plan) is shared   # the GPU files colocate the reference (and rollout) with the actor
