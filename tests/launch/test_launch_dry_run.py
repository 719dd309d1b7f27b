"""``launch.train --dry-run``: every shipped recipe x cluster prints a plan and starts nothing."""

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

    assert main([f"recipe={recipe}", f"cluster={cluster}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"name: {cluster}" in out  # the resolved config comes first
    assert "simulated placement" in out and "no Ray cluster was contacted" in out
    for role in ("actor", "rollout", "reward"):
        assert re.search(rf"^\s+{role}\s+\d+ worker\(s\).*-> node \d", out, re.M), role
    assert "dry run: nothing was started" in out
    assert not ray.is_initialized()


def _worker_nodes(out: str, role: str) -> set[int]:
    line = next(l for l in out.splitlines() if re.match(rf"^\s+{role}\s+\d+ worker", l))
    return {int(n) for n in re.findall(r"-> node (\d+)", line)}


def test_two_node_plan_pins_training_and_generation_to_their_nodes(capsys):
    assert main(["recipe=videoseg_r1", "cluster=2x8gpu", "eval.freq=50", "--dry-run"]) == 0
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
