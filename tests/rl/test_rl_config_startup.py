"""Every config problem is found at start-up, before Ray or SFT, and names its full dotted key.

Each case below used to pass the loader and fail late (inside an actor after Ray started,
after the first generation, or never: swallowed into ``val/eval_failures``).
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from rl.config import ConfigError, load_config
from rl.placement_sim import PlacementError, check_fits_cluster

# The small quickstart the failures were measured with.
T = ["recipe=quickstart", "trainer.total_steps=3", "sft.max_steps=5", "data.synthetic.num_videos=8", "eval.freq=0",
     "trainer.val_freq=0"]

LATE = [
    # (override, key, what the message says about the value)
    ("actor.kl_loss_type=full", "actor.kl_loss_type", "'full'"),
    ("actor.optim.lr=-1", "actor.optim.lr", "must be > 0, got -1.0"),
    ("trainer.total_steps=0", "trainer.total_steps", "must be >= 1, got 0"),
    ("sft.batch_size=0", "sft.batch_size", "must be >= 1, got 0"),
    ("actor.policy_loss=bogus", "actor.policy_loss", "'bogus'"),
    ("algorithm.adv_estimator=bogus", "algorithm.adv_estimator", "'bogus'"),
    ("eval.sampler=bogus", "eval.sampler", "'bogus'"),
    ("eval.propagator=bogus", "eval.propagator", "'bogus'"),
    ("reward.params.visionreasoner.invalid_item_policy=bogus", "reward.params.visionreasoner.invalid_item_policy",
     "['zero', 'unmatched'], got 'bogus'"),
]


@pytest.mark.parametrize("override, key, detail", LATE, ids=[k for _, k, _ in LATE])
def test_former_late_failures_are_load_errors_naming_the_key(override, key, detail):
    with pytest.raises(ConfigError) as info:
        load_config(T + [override])
    message = str(info.value)
    assert message.startswith(key + " ") and detail in message


@pytest.mark.parametrize("override, key", [(o, k) for o, k, _ in LATE[:3]] + [("trainer.totl_steps=5", "trainer.totl_steps")])
def test_launch_train_exits_2_naming_the_key_before_ray(override, key, tmp_path, capsys):
    import ray

    from launch.train import main

    with pytest.raises(SystemExit) as info:
        main(T + [override, f"trainer.run_dir={tmp_path / 'run'}"])
    assert info.value.code == 2
    assert key in capsys.readouterr().err
    assert not ray.is_initialized() and not (tmp_path / "run").exists()   # nothing was started or written


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(T + ["actor.optim.lr=0", "rollout.top_p=1.5", "data.input_size=[840]", "eval.htfs_delta=1"])
    message = str(info.value)
    assert message.startswith("4 problems: ")
    for text in ("actor.optim.lr must be > 0, got 0.0", "rollout.top_p must be > 0, <= 1, got 1.5",
                 "data.input_size must have length == 2, got 1 ([840])", "eval.htfs_delta must be > 0, < 1, got 1.0"):
        assert text in message


def test_cross_section_rules_name_their_keys():
    with pytest.raises(ConfigError, match=r"^cluster\.reference\.num_workers must be >= 1 when the KL loss is on"):
        load_config(T + ["cluster.reference.num_workers=0"])
    assert load_config(T + ["cluster.reference.num_workers=0", "actor.use_kl_loss=false"]).cluster.reference.num_workers == 0
    with pytest.raises(ConfigError, match=r"^cluster\.evaluator\.num_workers must be >= 1 when eval\.freq > 0"):
        load_config(T + ["cluster.evaluator.num_workers=0", "eval.freq=5"])
    with pytest.raises(ConfigError, match=r"model\.tiny\.head_dim must equal hidden_size / num_attention_heads"):
        load_config(T + ["model.tiny.num_attention_heads=2"])
    assert load_config(T + ["model.tiny.num_attention_heads=2", "model.path=/some/checkpoint"]).model.path  # not built
    with pytest.raises(ConfigError, match=r"cluster\.reference: .*colocate with 'actor'"):
        load_config(T + ["cluster.reference.colocate_with=actor", "cluster.reference.num_workers=3"])
    with pytest.raises(ConfigError, match=r"^reward\.segmenter\.image_size must be a multiple of 32"):
        load_config(T + ["reward.segmenter.backend=sam2", "reward.segmenter.image_size=100"])


# ------------------------------------------------------------- placement


def _node(cpus: float, gpus: float = 0.0, alive: bool = True, **custom: float) -> dict:
    resources = {"CPU": cpus, "memory": 1e9, "node:10.0.0.1": 1.0, **custom}
    if gpus:
        resources["GPU"] = gpus
    return {"Alive": alive, "Resources": resources}


def test_a_plan_larger_than_the_live_cluster_names_the_resource_and_the_keys():
    cfg = load_config(T + ["cluster.actor.gpus_per_worker=1"])    # 2 actor workers x 1 GPU on a CPU-only node
    with pytest.raises(PlacementError) as info:
        check_fits_cluster(cfg, [_node(8)])
    message = str(info.value)
    assert "pool 'actor'" in message and "needs 2 GPU in total but only 0 of 0 are left" in message
    for key in ("cluster.actor.num_workers = 2", "cluster.actor.gpus_per_worker = 1", "cluster.nodes = 1",
                "cluster.devices_per_node = 0"):
        assert key in message
    # the same plan fits two 1-GPU nodes (PACK fills nodes in order), and a dead node does not count
    placed = check_fits_cluster(cfg, [_node(8, 1), _node(8, 1), _node(64, 8, alive=False)])
    assert placed.role_nodes("actor") == [0, 1]
    with pytest.raises(PlacementError, match="cluster.actor.gpus_per_worker"):
        check_fits_cluster(cfg, [_node(8, 1), _node(64, 8, alive=False)])


def test_cpu_shortage_and_missing_node_resources_are_named():
    cfg = load_config(T)                                          # 2 + 1 + 1 + 2 x 0.5 = 5 CPUs of bundles
    assert check_fits_cluster(cfg, [_node(5)]).nodes[0].used["CPU"] == pytest.approx(5.0)
    with pytest.raises(PlacementError, match=r"CPU.*cluster\.num_cpus = 8"):
        check_fits_cluster(cfg, [_node(4)])
    pinned = load_config(T + ["cluster.rollout.node_resource=node_gen"])
    with pytest.raises(PlacementError, match="no node carries the custom resource 'node_gen'"):
        check_fits_cluster(pinned, [_node(8)])
    assert check_fits_cluster(pinned, [_node(8), _node(2, node_gen=1.0)]).role_nodes("rollout") == [1]


def test_init_ray_fails_at_once_for_a_cluster_larger_than_the_machine(monkeypatch):
    """Before: a 120 s placement-group timeout after SFT. Now: right after ray.init, Ray shut down again."""
    import ray

    from rl.run_setup import init_ray

    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    # no token auth: ray.init would switch this process (and later tests' Ray clients) to token mode
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    real_init = ray.init
    monkeypatch.setattr(ray, "init", lambda **kw: real_init(**kw, _temp_dir=tmp))
    cfg = load_config(T + ["cluster.actor.gpus_per_worker=1", "cluster.num_cpus=6"])
    try:
        with pytest.raises(PlacementError, match=r"GPU.*cluster\.actor\.gpus_per_worker = 1"):
            init_ray(cfg)
        assert not ray.is_initialized()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------- files and submit


def test_missing_input_files_are_named_at_launch_but_not_in_a_dry_run(tmp_path, capsys):
    from launch.common import config_from_argv

    run = [f"trainer.run_dir={tmp_path / 'run'}"]
    xmem = ["eval.freq=5", "eval.propagator=xmem", f"eval.xmem_checkpoint={tmp_path / 'XMem.pth'}"]
    with pytest.raises(SystemExit) as info:
        config_from_argv(T + run + xmem)
    assert info.value.code == 2 and f"eval.xmem_checkpoint = '{tmp_path / 'XMem.pth'}'" in capsys.readouterr().err
    config_from_argv(T + run + xmem + ["--dry-run"])                # a dry run checks no files
    (tmp_path / "XMem.pth").write_bytes(b"")
    assert config_from_argv(T + run + xmem)[0].eval.xmem_checkpoint == str(tmp_path / "XMem.pth")
    config_from_argv(T + run + ["eval.propagator=xmem", f"eval.xmem_checkpoint={tmp_path / 'nope'}"])  # eval.freq=0
    with pytest.raises(SystemExit):
        config_from_argv(T + run + [f"data.samples_path={tmp_path / 'samples.jsonl'}"])
    assert "data.samples_path" in capsys.readouterr().err


def test_submit_validates_the_config_locally_and_uploads_nothing(monkeypatch, capsys):
    from launch import submit

    def no_cluster(*args, **kwargs):
        raise AssertionError("the cluster was contacted")

    monkeypatch.setattr(submit, "client", no_cluster)
    assert submit.main(["--address", "http://127.0.0.1:9", "recipe=quickstart", "trainer.totl_steps=5"]) == 2
    err = capsys.readouterr().err
    assert "trainer.totl_steps" in err and "nothing was submitted" in err
    assert submit.main(["--address", "http://127.0.0.1:9", "--module", "launch.sft", "sft.lr=-1"]) == 2
    assert "sft.lr must be > 0" in capsys.readouterr().err
    assert submit.config_problem("launch.train", ["recipe=quickstart", "trainer.total_steps=5"]) is None
    assert submit.config_problem("launch.sweep", ["sweep=quickstart_learning", "trainer.total_stepz=5"]) is not None
