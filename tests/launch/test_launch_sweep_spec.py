"""Sweep files: expansion, validation against the config schema, trial configs and resources, ranking."""

from __future__ import annotations

import csv
import itertools
import math

import pytest

from rl.config import CONFIG_DIR, load_config
from rl.placement import roles_for
from rl.sweep.results import TrialResult, format_table, metric_value, rank, write_csv
from rl.sweep.runner import build_scheduler, build_search
from rl.sweep.spec import SweepError, format_override, load_sweep, parse_spec
from rl.sweep.trial import TrialContext, TuneReporter, short_keys, trial_name

SWEEPS = sorted(p.stem for p in (CONFIG_DIR / "sweeps").glob("*.yaml"))
IOU = "reward.params.visionreasoner.iou_threshold"
WACC = "reward.params.visionreasoner.weight_accuracy"


def _spec(**fields):
    data = {"name": "t", "recipe": "quickstart", "cluster": "local_cpu",
            "parameters": {IOU: {"values": [0.3, 0.5]}, WACC: {"values": [1.0, 2.0]}}}
    data.update(fields)
    return parse_spec(data, "test")


def test_reward_grid_expands_to_the_four_combinations_of_two_reward_parameters():
    spec = load_sweep("reward_grid")
    assert spec.search == "grid" and spec.max_concurrent_trials == 2 and spec.num_trials() == 4
    points = spec.grid()
    expected = [{IOU: a, WACC: b} for b, a in itertools.product([1.0, 2.0], [0.3, 0.5])]
    assert points == expected  # Ray Tune's order: the first key varies fastest
    names = [trial_name(spec.name, i, p) for i, p in enumerate(points)]
    assert len(set(names)) == 4 and names[1] == "reward_grid_001_iou_threshold=0.5_weight_accuracy=1"


def test_tune_search_space_uses_grid_search_for_values_and_samplers_for_distributions():
    from ray.tune.search.sample import Categorical, Float

    grid = _spec().param_space()
    assert grid[IOU] == {"grid_search": [0.3, 0.5]}
    rand = _spec(search="random", num_samples=5,
                 parameters={IOU: {"values": [0.3, 0.5]}, "actor.kl_loss_coef": {"distribution": "loguniform",
                                                                                  "min": 1e-3, "max": 1e-1}})
    space = rand.param_space()
    assert isinstance(space[IOU], Categorical) and isinstance(space["actor.kl_loss_coef"], Float)
    assert rand.num_trials() == 5


@pytest.mark.parametrize("parameters, match", [
    ({"reward.params.visionreasoner.no_such_key": {"values": [1]}}, "no_such_key"),
    ({IOU: {"values": ["high"]}}, IOU),
    ({IOU: {"distribution": "uniform", "min": 1.0, "max": 0.5}}, "min < max"),
    ({IOU: {"distribution": "gaussian", "min": 0, "max": 1}}, "distribution 'gaussian'"),
    ({IOU: {"values": [0.3], "distribution": "uniform"}}, "exactly one"),
    ({IOU: {"values": [0.3], "step": 2}}, "unknown field"),
])
def test_bad_parameters_are_errors_naming_the_key(parameters, match):
    with pytest.raises(SweepError, match=match):
        _spec(parameters=parameters)


def test_bad_sweep_fields_are_named():
    with pytest.raises(SweepError, match="unknown sweep field"):
        _spec(concurrency=3)
    with pytest.raises(SweepError, match="search 'hyperband'"):
        _spec(search="hyperband")
    with pytest.raises(SweepError, match="both swept and fixed"):
        _spec(overrides={IOU: 0.4})
    with pytest.raises(SweepError, match="continuous"):
        _spec(search="bayesopt")


def test_optional_bayesian_search_is_imported_only_when_asked_and_named_when_missing():
    import importlib.util

    spec = _spec(search="bayesopt", parameters={IOU: {"distribution": "uniform", "min": 0.2, "max": 0.8}})
    if importlib.util.find_spec("bayes_opt") is None:
        with pytest.raises(SweepError, match="bayesian-optimization"):
            build_search(spec)
    assert build_search(_spec()) is not None  # grid needs no optional package


def test_asha_scheduler_uses_its_metric_and_the_run_length():
    spec = _spec(scheduler={"type": "asha", "metric": "critic/score/mean", "grace_period": 2})
    sched = build_scheduler(spec, total_steps=10)
    assert sched.metric == "critic/score/mean" and sched._max_t == 10
    assert build_scheduler(_spec(), 10) is None


def test_command_line_items_set_sweep_fields_files_and_fixed_overrides(tmp_path):
    spec = load_sweep(str(CONFIG_DIR / "sweeps" / "reward_grid.yaml"),
                      ["sweep.max_concurrent_trials=1", f"sweep.dir={tmp_path}", "trainer.total_steps=2",
                       "cluster=local_cpu"])
    assert spec.max_concurrent_trials == 1 and spec.sweep_dir == tmp_path
    assert spec.overrides["trainer.total_steps"] == 2
    with pytest.raises(SweepError, match="sweep file not found"):
        load_sweep("no_such_sweep")


@pytest.mark.parametrize("value", [0.1, 1e-4, 3, True, "grabcut", [840, 840], "a,b"])
def test_overrides_round_trip_through_the_config_loader(value):
    key = {float: "actor.kl_loss_coef", int: "trainer.total_steps", bool: "actor.use_kl_loss",
           str: "reward.segmenter.backend", list: "data.input_size"}[type(value)]
    if value == "a,b":
        key = "trainer.experiment_name"
    cfg = load_config(["recipe=quickstart", format_override(key, value)])
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert node == value


def test_trial_config_has_its_own_run_dir_and_wandb_group_name_and_tags(tmp_path):
    spec = load_sweep("reward_grid")
    context = TrialContext(spec, str(tmp_path), str(tmp_path), ["model.path=/ckpt/sft"])
    cfg = context.trial_config({IOU: 0.5, WACC: 2.0}, "reward_grid_003")
    assert cfg.trainer.run_dir == str(tmp_path / "trials" / "reward_grid_003")
    assert cfg.tracking.group == "reward_grid" and cfg.tracking.name == "reward_grid_003"
    assert "sweep" in cfg.tracking.tags and "reward_grid" in cfg.tracking.tags
    assert cfg.reward.params.visionreasoner.iou_threshold == 0.5
    assert cfg.reward.params.visionreasoner.weight_accuracy == 2.0
    assert cfg.model.path == "/ckpt/sft" and cfg.trainer.total_steps == spec.overrides["trainer.total_steps"]


def test_trial_resources_are_the_trials_own_placement_plan_plus_a_driver_bundle(tmp_path):
    spec = load_sweep("reward_grid")
    context = TrialContext(spec, str(tmp_path), str(tmp_path))
    pgf = context.resources({IOU: 0.3, WACC: 1.0})
    cfg = context.trial_config({IOU: 0.3, WACC: 1.0}, "x")
    expected = [{"CPU": spec.trial_driver_cpus}]
    for role, workers in roles_for(cfg).items():  # one pool per role in local_cpu (nothing colocated)
        expected += [{"CPU": getattr(cfg.cluster, role).cpus_per_worker}] * workers
    assert pgf.bundles == expected and pgf.strategy == "PACK"
    # Two trials fit the sweep's local Ray at once.
    assert spec.num_cpus >= 2 * sum(b["CPU"] for b in pgf.bundles)


def test_reporter_always_carries_the_ranking_and_scheduler_metrics():
    reporter = TuneReporter(["val/score/mean", "critic/score/mean"])
    first = reporter.result(1, {"critic/score/mean": 1.5})
    assert math.isnan(first["val/score/mean"]) and first["critic/score/mean"] == 1.5 and first["step"] == 1
    reporter.result(2, {"critic/score/mean": 2.0, "val/score/mean": 3.0})
    third = reporter.result(3, {"critic/score/mean": 2.5})
    assert third["val/score/mean"] == 3.0


def test_short_keys_stay_unique():
    keys = ["a.x.weight", "b.x.weight", "c.lr"]
    assert short_keys(keys) == {"a.x.weight": "a.x.weight", "b.x.weight": "b.x.weight", "c.lr": "lr"}


def test_ranking_orders_by_the_metric_and_puts_trials_without_a_value_last(tmp_path):
    rows = [{"step": 1, "val/score/mean": 1.0}, {"step": 2}, {"step": 3, "val/score/mean": 0.5}]
    assert metric_value(rows, "val/score/mean", "last", "max") == 0.5
    assert metric_value(rows, "val/score/mean", "best", "max") == 1.0
    assert metric_value(rows, "val/score/mean", "best", "min") == 0.5
    assert metric_value([{"step": 1}], "val/score/mean", "last", "max") is None
    spec = _spec()
    results = [TrialResult("b", {IOU: 0.5}, 2.0, 3, 3, "finished", "/b"),
               TrialResult("a", {IOU: 0.3}, None, 1, 3, "error", "/a", error="boom"),
               TrialResult("c", {IOU: 0.3}, 4.0, 3, 3, "finished", "/c")]
    ranked = rank(results, "max")
    assert [r.name for r in ranked] == ["c", "b", "a"] and [r.rank for r in ranked] == [1, 2, 3]
    assert [r.name for r in rank(results, "min")] == ["b", "c", "a"]
    with write_csv(rank(results, "max"), tmp_path / "results.csv", spec).open(newline="") as handle:
        rows_csv = list(csv.DictReader(handle))
    assert [r["trial"] for r in rows_csv] == ["c", "b", "a"] and rows_csv[0][IOU] == "0.3"
    assert rows_csv[0]["val/score/mean"] == "4.0" and rows_csv[2]["status"] == "error"
    assert "rank" in format_table(ranked, spec).splitlines()[0]


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_dry_runs(name, capsys):
    from launch.sweep import main

    # --allow-missing: the GPU recipes' /checkpoints/... paths do not exist here (tests/launch/test_preflight.py)
    assert main([f"sweep=configs/sweeps/{name}.yaml", "--dry-run", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert f"sweep '{name}'" in out and "each trial holds one placement group" in out
    assert "nothing was started" in out


def test_sweep_cli_errors_exit_2(capsys):
    from launch.sweep import main

    assert main(["sweep=configs/sweeps/reward_grid.yaml", "sweep.search=annealing", "--dry-run"]) == 2
    assert "annealing" in capsys.readouterr().err
    assert main(["--dry-run"]) == 2
