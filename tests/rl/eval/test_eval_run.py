"""``python -m launch.evaluate run`` end to end on tiny synthetic sets (without a policy, and with the tiny policy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch.evaluate import main as evaluate_main
from launch.evaluate import run_overrides

REPO = Path(__file__).resolve().parents[3]
SMALL_DATA = ["data.synthetic.num_videos=2", "data.synthetic.num_frames=5", "data.synthetic.height=64",
              "data.synthetic.width=64", "data.synthetic.min_target_area=0.05"]


def test_shorthands_map_to_config_keys():
    assert run_overrides(["checkpoint=/m", "dataset.root=/d", "dataset.format=mevis", "dataset.split=valid_u",
                          "out=/o", "max_videos=3", "eval.sampler=rcot"]) == [
        "eval.checkpoint=/m", "eval.dataset_root=/d", "eval.dataset_format=mevis", "eval.dataset_split=valid_u",
        "eval.out_dir=/o", "eval.max_videos=3", "eval.sampler=rcot"]


def test_run_without_a_policy_uses_gt_cues(tmp_path, capsys):
    out = tmp_path / "out"
    code = evaluate_main(["run", f"dataset.root={tmp_path / 'data'}", "dataset.format=synthetic", f"out={out}",
                          f"trainer.run_dir={tmp_path / 'run'}", "eval.progress=false", *SMALL_DATA])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pipeline"]["sampler"] == "oracle" and summary["pipeline"]["oracle_cues"] is True
    assert summary["num_videos"] == 2 and summary["J&F"] is not None
    # The synthetic reader's object ids give the target-count splits; every scored expression is in one.
    assert "J&F_stderr" in summary and "multi_target" in summary and "single_target" in summary
    split_sizes = [(summary[k] or {}).get("num_expressions", 0) for k in ("multi_target", "single_target")]
    assert sum(split_sizes) == summary["num_expressions"]
    assert (tmp_path / "data" / "valid" / "meta_expressions.json").is_file()     # generated on demand
    assert (out / "per_expression.csv").is_file() and (out / "diagnostics.csv").is_file()
    printed = json.loads(capsys.readouterr().out)
    assert printed["J&F"] == pytest.approx(summary["J&F"])


def test_run_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        evaluate_main(["run", "eval.samplr=rcot"])
    assert exc.value.code == 2 and "eval.samplr" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:             # a bad choice is rejected by the config loader too
        evaluate_main(["run", "eval.sampler=random", f"dataset.root={tmp_path}"])
    assert exc.value.code == 2 and "eval.sampler" in capsys.readouterr().err
    assert evaluate_main(["run", "not-a-pair"]) == 2
    assert evaluate_main(["run", f"checkpoint={tmp_path / 'missing'}", f"dataset.root={tmp_path / 'd'}",
                          "dataset.format=synthetic", *SMALL_DATA, "eval.progress=false"]) == 2
    assert "missing" in capsys.readouterr().err


# ----------------------------------------------------------------------- with the tiny policy

TINY_POLICY_ARGS = [
    "recipe=quickstart", "eval.progress=false", "eval.sampler_frame_size=[112,112]", "eval.sampler_max_frames=5",
    "eval.sampler_max_tokens=24", "rollout.max_response_length=32", "eval.htfs_num_intervals=2",
    "eval.htfs_num_positions=2", "eval.aks_max_rounds=2", "eval.rcot_light_frames=3",
    "data.synthetic.num_videos=2", "data.synthetic.num_frames=5", "data.synthetic.height=112",
    "data.synthetic.width=112",
]


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    from rl.config import TinyModelConfig
    from rl.models.tiny import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny"), TinyModelConfig(), image_size=112)


@pytest.mark.slow
def test_cli_run_with_the_tiny_policy(tiny_policy, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "launch.evaluate", "run", f"checkpoint={tiny_policy}",
         f"dataset.root={tmp_path / 'data'}", "dataset.format=synthetic", f"out={out}",
         f"trainer.run_dir={tmp_path / 'run'}", "eval.sampler=auto", *TINY_POLICY_ARGS],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pipeline"]["sampler"] == "hierarchical" and summary["pipeline"]["oracle_cues"] is False
    assert summary["mllm"]["sampler_calls"] >= 2 and summary["mllm"]["policy_calls"] == 1
    # An untrained policy answers nonsense: every answer is parsed, the unusable ones fall back and are counted.
    assert summary["stats"]["interval/answers"] > 0 and summary["stats"]["position/answers"] > 0
    assert sum(v for k, v in summary["stats"].items() if k.startswith("grounding/")) == summary["mllm"]["policy_prompts"]
    assert summary["prediction_files"]["missing_frames"] == 0
    assert 0.0 <= summary["J&F"] <= 100.0


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["rcot", "rcot_light", "veason"])
def test_run_other_samplers_with_the_tiny_policy(tiny_policy, tmp_path, sampler):
    out = tmp_path / "out"
    code = evaluate_main(["run", f"checkpoint={tiny_policy}", f"dataset.root={tmp_path / 'data'}",
                          "dataset.format=synthetic", f"out={out}", f"trainer.run_dir={tmp_path / 'run'}",
                          f"eval.sampler={sampler}", *TINY_POLICY_ARGS])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pipeline"]["sampler"] == sampler
    if sampler.startswith("rcot"):
        assert 1.0 <= summary["diagnostics"]["aks_rounds"] <= 2.0
        assert summary["stats"]["description/answers"] == 2          # once per video
    else:
        assert summary["mllm"]["policy_calls"] == 0                  # boxes come with the Veason answer
