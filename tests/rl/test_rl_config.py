"""Config schema: recipes, cluster files, overrides and start-up errors that name the key."""

from pathlib import Path

import pytest

from rl.config import CONFIG_DIR, Config, ConfigError, load_config
from rl.config_doc import default_yaml, undocumented

RECIPES = sorted(p.stem for p in (CONFIG_DIR / "recipes").glob("*.yaml"))
CLUSTERS = sorted(p.stem for p in (CONFIG_DIR / "cluster").glob("*.yaml"))


def test_defaults_load_without_arguments():
    cfg = load_config([])
    assert isinstance(cfg, Config)
    assert cfg.reward.name == "visionreasoner"
    assert cfg.data.input_size == [840, 840]


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_resolves(recipe):
    cfg = load_config([f"recipe={recipe}"])
    assert cfg.recipe == recipe


def test_paper_recipes_carry_paper_hyperparameters():
    ktg = load_config(["recipe=rcot_ktg"])
    aks = load_config(["recipe=rcot_aks"])
    assert (ktg.trainer.total_steps, aks.trainer.total_steps) == (1000, 500)  # RCoT-Seg Table 7
    for cfg in (ktg, aks):
        assert cfg.actor.optim.lr == 1e-6 and cfg.actor.optim.weight_decay == 0.01
        assert cfg.rollout.n == 8 and cfg.trainer.train_batch_size == 16
        assert cfg.actor.kl_loss_type == "low_var_kl" and cfg.actor.kl_loss_coef == 0.01
        assert cfg.sft.lora.rank == 8 and cfg.sft.lr == 1e-4
    assert aks.reward.name == "rcot_aks" and aks.data.task == "aks"
    veason = load_config(["recipe=veason_r1"])
    assert veason.data.input_size == [560, 560] and veason.actor.kl_loss_coef == 5e-3


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_cluster_file_resolves(cluster):
    cfg = load_config(["recipe=quickstart", f"cluster={cluster}"])
    assert cfg.cluster.name == cluster


def test_recipe_names_its_cluster_and_command_line_wins():
    assert load_config(["recipe=rcot_ktg"]).cluster.name == "1x4gpu"
    assert load_config(["recipe=rcot_ktg", "cluster=local_cpu"]).cluster.name == "local_cpu"


def test_overrides_apply_with_types():
    cfg = load_config(["recipe=quickstart", "trainer.total_steps=7", "actor.optim.lr=3e-4",
                       "data.input_size=[64,48]", "tracking.tags=[a,b]"])
    assert cfg.trainer.total_steps == 7
    assert cfg.actor.optim.lr == pytest.approx(3e-4)
    assert cfg.data.input_size == [64, 48]
    assert cfg.tracking.tags == ["a", "b"]


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.nonexistent=1", "trainer.nonexistent"),
        ("reward.params.rcot_ktg.etaa=0.3", "reward.params.rcot_ktg.etaa"),
        ("bogus=1", "bogus"),
    ],
)
def test_unknown_key_names_the_key(override, key):
    with pytest.raises(ConfigError, match="unknown config key") as info:
        load_config([override])
    assert key in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [("trainer.total_steps=many", "trainer.total_steps"), ("actor.optim.lr=fast", "actor.optim.lr"),
     ("rollout.n=[1,2]", "rollout.n")],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_config([override])
    assert key in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [("data.format=coco", "data.format"), ("reward.name=bleu", "reward.name"),
     ("actor.loss_agg_mode=sum", "actor.loss_agg_mode"), ("rollout.n=0", "rollout.n")],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([override])


def test_recipe_file_with_unknown_key_is_rejected(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  total_stepz: 3\n")
    with pytest.raises(ConfigError, match="trainer.total_stepz"):
        load_config([f"recipe={bad}"])


def test_recipe_extends_another_and_its_own_keys_win(tmp_path: Path):
    base = load_config(["recipe=quickstart"])
    child = load_config(["recipe=quickstart_vllm"])
    assert (child.rollout.backend, child.rollout.vllm_python, child.trainer.run_dir) == \
        ("vllm", "auto", "runs/quickstart_vllm")
    # everything it does not set comes from the base recipe, not from the dataclass defaults
    assert child.data == base.data and child.actor == base.actor and child.cluster == base.cluster
    assert child.rollout.n == base.rollout.n == 8 and base.rollout.n != 0 and child.recipe == "quickstart_vllm"
    # a chain of files, the most derived cluster wins, the command line wins over all
    mid = tmp_path / "mid.yaml"
    mid.write_text("extends: rcot_ktg\ncluster: local_cpu\ntrainer:\n  total_steps: 7\n")
    leaf = tmp_path / "leaf.yaml"
    leaf.write_text(f"extends: {mid}\ntrainer:\n  seed: 3\n")
    cfg = load_config([f"recipe={leaf}", "trainer.seed=4"])
    ktg = load_config(["recipe=rcot_ktg"])
    assert (cfg.trainer.total_steps, cfg.trainer.seed, cfg.cluster.name) == (7, 4, "local_cpu")
    assert cfg.reward == ktg.reward and cfg.actor.optim == ktg.actor.optim and ktg.cluster.name == "1x4gpu"


def test_recipe_extends_cycle_and_unknown_base_are_errors(tmp_path: Path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"extends: {b}\n")
    b.write_text(f"extends: {a}\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config([f"recipe={a}"])
    a.write_text("extends: no_such_recipe\n")
    with pytest.raises(ConfigError, match="unknown recipe 'no_such_recipe'"):
        load_config([f"recipe={a}"])


def test_uneven_rank_split_is_rejected():
    with pytest.raises(ConfigError, match="divisible"):
        load_config(["recipe=quickstart", "cluster.actor.num_workers=3"])


def test_default_yaml_is_current_and_documents_every_key():
    assert undocumented(Config()) == []
    committed = (CONFIG_DIR / "default.yaml").read_text()
    assert committed == default_yaml(), "configs/default.yaml is stale: python -m rl.config_doc > configs/default.yaml"


def test_default_yaml_loads_back_to_the_defaults():
    cfg = load_config([f"recipe={CONFIG_DIR / 'default.yaml'}"])
    assert cfg.trainer == Config().trainer and cfg.reward == Config().reward and cfg.data == Config().data


def test_reward_that_does_not_score_the_task_is_a_config_error():
    # rcot_aks scores AKS records only; on KTG data every sample would be refused at scoring time.
    with pytest.raises(ConfigError) as err:
        load_config(["recipe=rcot_ktg", "reward.name=rcot_aks"])
    assert "reward.name" in str(err.value) and "data.task='ktg'" in str(err.value)
    assert load_config(["recipe=rcot_ktg", "reward.name=visionreasoner"]).reward.name == "visionreasoner"


# ------------------------------------------------------------------ profiles and the paper recipes' evaluation

PAPER_RECIPES = ("videoseg_r1", "rcot_ktg", "rcot_aks", "veason_r1")


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_resolves_with_the_cpu_profile(recipe):
    plain = load_config([f"recipe={recipe}"])
    cfg = load_config([f"recipe={recipe}", "profile=cpu"])
    assert (cfg.recipe, cfg.profile, plain.profile) == (recipe, "cpu", "")
    assert (cfg.trainer.device, cfg.rollout.backend, cfg.model.path) == ("cpu", "hf", "")
    assert (cfg.model.dtype, cfg.model.attn_implementation, cfg.actor.fsdp.param_dtype) == ("float32", "sdpa", "float32")
    assert cfg.cluster.name == "local_cpu" and cfg.cluster.devices_per_node == 0
    assert (cfg.trainer.run_dir, cfg.trainer.experiment_name) == (f"runs/{recipe}_cpu", f"{recipe}_cpu")
    assert cfg.tracking.wandb_mode == "offline" and cfg.eval.freq > 0
    for seg in (cfg.reward.segmenter, cfg.eval.segmenter):   # random SAM2 weights on the CPU
        assert (seg.device, seg.checkpoint) == ("cpu", "")
    assert cfg.eval.xmem_checkpoint == "" and cfg.eval.sampler_model == ""
    # What makes the recipe that paper's stays: task, reward, prompts, keyframe sampler, propagator, backends.
    assert (cfg.data.task, cfg.data.format, cfg.reward.name, cfg.data.prompt_style) == \
        (plain.data.task, plain.data.format, plain.reward.name, plain.data.prompt_style)
    assert (cfg.eval.sampler, cfg.eval.propagator, cfg.eval.negative_points, cfg.eval.dataset_split) == \
        (plain.eval.sampler, plain.eval.propagator, plain.eval.negative_points, plain.eval.dataset_split)
    assert (cfg.reward.segmenter.backend, cfg.eval.segmenter.backend) == \
        (plain.reward.segmenter.backend, plain.eval.segmenter.backend)
    assert cfg.sft.lora == plain.sft.lora


def test_profile_order_recipe_then_profile_then_cluster_then_command_line(tmp_path: Path):
    recipe = load_config(["recipe=rcot_ktg"])
    profiled = load_config(["recipe=rcot_ktg", "profile=cpu"])
    assert (recipe.trainer.total_steps, profiled.trainer.total_steps) == (1000, 2)       # profile beats recipe
    assert recipe.actor.optim.lr == profiled.actor.optim.lr == 1e-6                      # untouched keys stay
    assert load_config(["recipe=rcot_ktg", "profile=cpu", "trainer.total_steps=5"]).trainer.total_steps == 5
    assert load_config(["recipe=rcot_ktg", "profile=cpu", "trainer.run_dir=x"]).trainer.run_dir == "x"
    # The profile's cluster name beats the recipe's (1x4gpu); cluster=NAME beats both; a cluster file beats
    # the profile's cluster.* keys, and a command-line cluster.* key beats the file.
    assert (recipe.cluster.name, profiled.cluster.name) == ("1x4gpu", "local_cpu")
    assert load_config(["recipe=rcot_ktg", "profile=cpu", "cluster=local_2node"]).cluster.name == "local_2node"
    profile = tmp_path / "p.yaml"
    profile.write_text("cluster:\n  actor: {num_workers: 8}\ntrainer:\n  total_steps: 9\n")
    cfg = load_config(["recipe=quickstart", f"profile={profile}", "cluster=local_cpu"])
    assert (cfg.cluster.actor.num_workers, cfg.trainer.total_steps, cfg.profile) == (2, 9, "p")
    cfg = load_config(["recipe=quickstart", f"profile={profile}", "cluster.actor.num_workers=4"])
    assert cfg.cluster.actor.num_workers == 4


def test_unknown_profile_and_bad_profile_key_are_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"unknown profile 'laptop'; known: \[.*'cpu'"):
        load_config(["recipe=quickstart", "profile=laptop"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  devise: cpu\n")
    with pytest.raises(ConfigError, match=rf"trainer.devise' in {bad}"):
        load_config(["recipe=quickstart", f"profile={bad}"])


@pytest.mark.parametrize("recipe", PAPER_RECIPES)
def test_paper_recipes_evaluate_during_training_with_their_papers_pipeline(recipe):
    cfg = load_config([f"recipe={recipe}"])
    ev = cfg.eval
    assert ev.freq == cfg.trainer.val_freq == 100
    expected = {"videoseg_r1": ("hierarchical", "xmem"), "rcot_ktg": ("rcot", "sam2"), "rcot_aks": ("rcot", "sam2"),
                "veason_r1": ("veason", "sam2")}[recipe]
    assert (ev.sampler, ev.propagator) == expected
    assert (ev.segmenter.backend, ev.segmenter.device, ev.segmenter.image_size) == ("sam2", "cuda", 1024)
    assert ev.segmenter.checkpoint.startswith("/checkpoints/") and ev.segmenter.sam2_config.endswith("hiera_l.yaml")
    assert (ev.xmem_checkpoint == "/checkpoints/XMem.pth") == (ev.propagator == "xmem")
    assert ev.negative_points == (recipe == "videoseg_r1")        # VideoSeg-R1 answers a negative point per object
    assert (ev.sampler_model != "") == (recipe == "videoseg_r1")   # its frame sampler is a frozen base model
    # The annotated validation split of the recipe's data set, under the same data.root as training.
    assert (cfg.data.format, ev.dataset_split, ev.dataset_root) in (("mevis", "valid_u", ""), ("revos", "valid", ""))
    assert cfg.data.split == "train" and not cfg.data.root.endswith("/train")
