"""``python -m launch.annotate``: argument errors, ``--dry-run`` plans without starting anything,
and an output folder made with other settings is refused before any work (exit 2)."""

from __future__ import annotations

import json

from data.annotate.runner import job_settings, plan_job
from data.annotate.shards import check_manifest, shard_paths, write_atomic
from data.build import write_samples
from launch.annotate import main
from rl.config import load_config


def _samples(tmp_path, n=5):
    records = [{"id": f"s{i}", "task": "ktg", "images": ["/x.png"], "prompt": "p", "split": "train",
                "ground_truth": {"objects": []}} for i in range(n)]
    return write_samples(records, tmp_path / "in.jsonl")


def test_a_job_name_is_required(capsys):
    assert main(["annotate.shard_size=2"]) == 2
    assert "name one job (difficulty, cot, generate)" in capsys.readouterr().err
    assert main(["rate", "--dry-run"]) == 2
    assert main(["cot", "--dry-run", "--bogus"]) == 2


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    path = _samples(tmp_path)
    out = tmp_path / "out"
    status = main(["difficulty", f"annotate.inputs=[{path}]", f"annotate.output_dir={out}", "annotate.shard_size=2",
                   "annotate.num_actors=2", f"trainer.run_dir={tmp_path / 'run'}", "--dry-run"])
    text = capsys.readouterr().out
    assert status == 0
    assert "annotate difficulty: 5 record(s) in 3 shard(s) (0 done, 3 to do)" in text
    assert "Ray Data actors: 2 x (1 CPU, 0 GPU)" in text and "dry run: nothing was started" in text
    assert not out.exists() and not (tmp_path / "run").exists()


def test_missing_input_is_a_config_error(tmp_path, capsys):
    assert main(["generate", f"annotate.inputs=[{tmp_path / 'none.jsonl'}]", "--dry-run"]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_output_of_other_settings_is_refused_and_untouched(tmp_path, capsys):
    path = _samples(tmp_path)
    out = tmp_path / "out"
    common = [f"annotate.inputs=[{path}]", f"annotate.output_dir={out}", f"trainer.run_dir={tmp_path / 'run'}",
              "annotate.shard_size=2"]
    cfg = load_config(["recipe=quickstart", *common])
    plan = plan_job(cfg, "cot")
    check_manifest(out, job_settings(cfg, "cot", plan.inputs, plan.model_path))
    report, rows = shard_paths(out, 0)
    write_atomic(report, b"{}\n")
    write_atomic(rows, b"")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["cot", *common, "annotate.cot.k=8", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "cot.k: 4 -> 8" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # the same settings resume: the done shard is counted as done
    assert main(["cot", *common, "--dry-run"]) == 0
    assert "(1 done, 2 to do)" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["job"] == "cot"
