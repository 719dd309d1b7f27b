"""The CPU rehearsal of a paper recipe exactly as docs/first_run.md gives it (its ``runnable: slow``
block): synthetic videos in the MeViS layout, ``launch.train recipe=rcot_ktg profile=cpu`` (CoT-SFT cold
start, GRPO with the video evaluation on), ``launch.export --step 2`` and ``rl.report``; then what the
block wrote is checked, and the exported policy is evaluated once more with ground-truth cues so that
SAM2's keyframe segmenter and video predictor really run on the CPU.

The models are random (tiny Qwen2.5-VL, SAM2 with random weights), so the test checks that every
stage ran and wrote what it should, not the values: J&F is finite and within [0, 100].
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from tests.test_readme import doc_blocks, run_block

pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_guides_cpu_rehearsal_runs_sft_grpo_with_evaluation_export_and_report(tmp_path):
    (block,) = [b for b in doc_blocks() if b.kind == "slow"]
    assert block.source == "docs/first_run.md" and "profile=cpu" in block.code
    try:
        result = run_block(block.code, tmp_path, timeout=900)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.name}: did not finish in {exc.timeout:.0f} s\n{block.code}")
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{block.name} failed:\n{block.code}\n{log[-6000:]}"

    run_dir = tmp_path / "runs" / "rcot_ktg_cpu"
    config = (run_dir / "config.yaml").read_text()
    assert "profile: cpu" in config and "sampler: rcot" in config and "propagator: sam2" in config
    assert (run_dir / "sft" / "config.json").is_file()                      # the cold start ran
    rows = {r["step"]: r for r in _rows(run_dir / "metrics.jsonl")}
    assert sorted(rows) == [0, 1, 2]                                         # step 0 = the starting policy
    for step in (0, 2):                                                      # video evaluation at 0 and the end
        row = rows[step]
        assert row["val/num_videos"] >= 1 and row["val/eval_failures"] == 0.0
        for key in ("val/J", "val/F", "val/J&F"):
            assert math.isfinite(row[key]) and 0 <= row[key] <= 100, (step, key, row[key])
    assert math.isfinite(rows[2]["critic/score/mean"])
    assert (run_dir / "eval" / "step_000002" / "summary.json").is_file()
    export = run_dir / "exports" / "global_step_2"                           # launch.export --step 2
    assert (export / "config.json").is_file() and list(export.glob("*.safetensors"))
    assert (run_dir / "report.md").is_file()

    # The exported policy on its own, GT cues prompting SAM2: the keyframe segmenter and SAM2's video
    # predictor run whatever the random policy answers.
    from launch.evaluate import main as evaluate

    out = tmp_path / "oracle_eval"
    assert evaluate(["run", "recipe=rcot_ktg", "profile=cpu", f"data.root={tmp_path / 'runs' / 'data' / 'mevis'}",
                     f"checkpoint={export}", f"out={out}", "max_videos=1", "eval.oracle_cues=true"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "valid_u" and summary["num_videos"] == 1
    assert math.isfinite(summary["J&F"]) and 0 <= summary["J&F"] <= 100
    diagnostics = summary["diagnostics"]      # a non-empty keyframe mask is what the propagator is run on
    assert diagnostics["empty_keyframe_masks"] < diagnostics["num_expressions"]
    assert list(out.glob("*/*/*.png")), "no predicted masks were written"
