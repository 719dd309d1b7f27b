"""``launch.train --dry-run``: every shipped recipe x cluster prints a plan and starts nothing.

The GPU recipes name cluster paths (``/checkpoints/...``, ``/data/...``) that this machine lacks:
their dry runs pass ``--allow-missing`` (the pre-flight checks are tested in test_preflight.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from launch.train import main
from rl.config import CONFIG_DIR

RECIPES = sorted(p.stem for p in (CONFIG_DIR / "recipes").glob("*.yaml"))
CLUSTERS = sorted(p.stem for p in (CONFIG_DIR / "cluster").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cluster", CLUSTERS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_on_every_cluster_prints_a_feasible_plan(recipe, cluster, capsys):
    import ray

    assert main([f"recipe={recipe}", f"cluster={cluster}", "--dry-run", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert f"name: {cluster}" in out  # the resolved config comes first
    assert "simulated placement" in out and "no Ray cluster was contacted" in out
    for role in ("actor", "rollout", "reward"):
        assert re.search(rf"^\s+{role}\s+\d+ worker\(s\).*-> node \d", out, re.M), role
    assert "dry run: nothing was started" in out and "input files" in out
    assert not ray.is_initialized()


def _worker_nodes(out: str, role: str) -> set[int]:
    line = next(l for l in out.splitlines() if re.match(rf"^\s+{role}\s+\d+ worker", l))
    return {int(n) for n in re.findall(r"-> node (\d+)", line)}


def test_two_node_plan_pins_training_and_generation_to_their_nodes(capsys):
    assert main(["recipe=videoseg_r1", "cluster=2x8gpu", "eval.freq=50", "--dry-run", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert _worker_nodes(out, "actor") == {0} and _worker_nodes(out, "reference") == {0}
    for role in ("rollout", "reward", "evaluator"):
        assert _worker_nodes(out, role) == {1}, role


def test_a_plan_needing_more_gpus_than_the_cluster_has_is_an_error_naming_the_pool(capsys):
    assert main(["recipe=videoseg_r1", "cluster=1x8gpu", "cluster.rollout.num_workers=6", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "placement error" in err and "pool 'rollout'" in err and "GPU" in err


def test_the_cli_exits_0_without_starting_ray(tmp_path):
    result = subprocess.run([sys.executable, "-m", "launch.train", "recipe=quickstart", "cluster=local_cpu",
                             "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "RAY_TMPDIR": str(tmp_path), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "simulated placement" in result.stdout
    assert not any(tmp_path.glob("ray*")), "a dry run must not start Ray"


@pytest.mark.parametrize("recipe", ["videoseg_r1", "rcot_ktg", "rcot_aks", "veason_r1"])
def test_paper_recipe_dry_run_on_its_default_cluster_places_the_evaluator(recipe, capsys):
    assert main([f"recipe={recipe}", "--dry-run", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert "evaluator: not placed" not in out
    assert re.search(r"^  evaluator: every 100 steps \(eval\.freq\)", out, re.M)
    worker = re.search(r"^\s+evaluator\s+1 worker\(s\), each CPU \S+ GPU (\S+): worker 0 -> node 0$", out, re.M)
    assert worker and float(worker.group(1)) > 0
    used, total = map(int, re.search(r"node 0: GPU (\d+)/(\d+)", out).groups())
    assert used <= total


def test_cpu_profile_dry_run_plans_a_local_cpu_run_with_the_evaluator(capsys, tmp_path):
    assert main(["recipe=videoseg_r1", "profile=cpu", f"data.root={tmp_path}", "--dry-run", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert "name: local_cpu" in out and re.search(r"^  run_dir: \S*runs/videoseg_r1_cpu$", out, re.M)
    assert re.search(r"^\s+evaluator\s+1 worker\(s\), each CPU 1 GPU 0: worker 0 -> node 0$", out, re.M)
    assert "sampler hierarchical, segmenter sam2 on cpu, propagator xmem" in out
