"""The annotation engine without Ray or a model: shard planning and reading, atomic writes, the
output manifest, and one shard's retries / failures / skips with a scripted answering backend."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from data.annotate.job import AnnotationJob, Outcome, Request
from data.annotate.shards import (OutputConflict, check_manifest, is_done, plan_shards, read_shard, shard_paths,
                                  write_atomic)
from data.annotate.worker import annotate_shard, call_seed, frame_problem
from data.build import write_samples
from rl.rollout.base import GeneratedResponse, RolloutOutput


def _records(tmp_path: Path, n: int) -> list[dict]:
    image = tmp_path / "frame.png"
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(image)
    return [{"id": f"s{i}", "task": "ktg", "images": [str(image)], "prompt": f"q{i}", "split": "train",
             "ground_truth": {"objects": []}} for i in range(n)]


def test_plan_covers_every_record_once_in_both_formats(tmp_path):
    records = _records(tmp_path, 7)
    jsonl, parquet = write_samples(records, tmp_path / "a.jsonl"), write_samples(records[:5], tmp_path / "b.parquet")
    specs = plan_shards([jsonl, parquet], shard_size=3)
    assert [(s.input_index, s.start, s.count) for s in specs] == [(0, 0, 3), (0, 3, 3), (0, 6, 1), (1, 0, 3), (1, 3, 2)]
    assert [s.index for s in specs] == list(range(5))
    read = [r["id"] for s in specs for r in read_shard(s)[0]]
    assert read == [f"s{i}" for i in range(7)] + [f"s{i}" for i in range(5)]


def test_bad_lines_are_skipped_named_and_counted(tmp_path):
    records = _records(tmp_path, 3)
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(records[0]), "{not json", "", json.dumps({"id": "x"}), json.dumps(records[2])]
    path.write_text("\n".join(lines) + "\n")
    specs = plan_shards([path], shard_size=10)
    assert [s.count for s in specs] == [4]  # the blank line is no record
    got, problems = read_shard(specs[0])
    assert [r["id"] for r in got] == ["s0", "s2"]
    assert [p["where"] for p in problems] == [f"{path} record 1", f"{path} record 2"]
    assert {p["reason"] for p in problems} == {"invalid_record"}


def test_missing_input_and_wrong_suffix_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        plan_shards([tmp_path / "nope.jsonl"], 4)
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(ValueError, match=r"\.jsonl or \.parquet"):
        plan_shards([tmp_path / "x.csv"], 4)


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "d" / "f.jsonl"
    write_atomic(target, b"one\n")
    write_atomic(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert [p.name for p in target.parent.iterdir()] == ["f.jsonl"]


def test_manifest_refuses_other_settings_and_foreign_folders(tmp_path):
    out = tmp_path / "out"
    assert check_manifest(out, {"job": "cot", "k": 4}) is False
    assert check_manifest(out, {"job": "cot", "k": 4}) is True
    with pytest.raises(OutputConflict, match=r"k: 4 -> 8"):
        check_manifest(out, {"job": "cot", "k": 8})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("mine")
    with pytest.raises(OutputConflict, match="no manifest.json"):
        check_manifest(foreign, {"job": "cot"})


def test_frame_problem_names_missing_and_corrupt_frames(tmp_path):
    good = _records(tmp_path, 1)[0]
    assert frame_problem(good, tmp_path) is None
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    assert frame_problem({**good, "images": [str(bad)]}, tmp_path).startswith(f"corrupt frame {bad}")
    assert frame_problem({**good, "images": ["gone.png"]}, tmp_path) == f"missing frame {tmp_path / 'gone.png'}"


# --------------------------------------------------------------------- one shard, scripted answers


class ScriptedBackend:
    """Answers from a script: ``script[prompt]`` is the list of answers of successive calls."""

    def __init__(self, script: dict[str, list[str]]):
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[tuple[list[str], int, float, int]] = []

    def generate(self, prompts, params):
        self.calls.append(([p["prompt"] for p in prompts], params.n, params.temperature, params.seed))
        responses = []
        for i, p in enumerate(prompts):
            for _ in range(params.n):
                text = self.script[p["prompt"]].pop(0)
                responses.append(GeneratedResponse(i, [1], None, text, "stop"))
        return RolloutOutput([[0]] * len(prompts), responses, params.n)


class EchoJob(AnnotationJob):
    """Parses an integer answer; 'never' -> failed without retry; other text -> retry."""

    name = "echo"

    def request(self, sample, attempt):
        return Request({"prompt": sample["prompt"], "images": sample["images"]}, n=1,
                       temperature=0.0 if attempt == 0 else 1.0)

    def judge(self, sample, answers):
        if answers[0] == "never":
            return Outcome("failed", reason="refused", raw=answers)
        try:
            return Outcome("done", fields={"value": int(answers[0])})
        except ValueError:
            return Outcome("retry", reason="unparseable", raw=answers)


def _annotate(max_retries=2, batch_size=2, splits=()):
    return SimpleNamespace(splits=list(splits), max_retries=max_retries, batch_size=batch_size, seed=3, top_p=1.0,
                           max_tokens=16)


def test_shard_retries_then_fails_and_writes_every_row_once(tmp_path):
    records = _records(tmp_path, 5)
    records[3]["images"] = [str(tmp_path / "missing.png")]
    records[4]["split"] = "val"
    path = write_samples(records, tmp_path / "in.jsonl")
    spec = plan_shards([path], 10)[0]
    backend = ScriptedBackend({"q0": ["7"], "q1": ["x", "y", "z"], "q2": ["oops", "9"], "q4": ["never"]})
    out = tmp_path / "out"
    report = annotate_shard(spec, EchoJob(None, "m"), backend, _annotate(), out)
    assert report["done"] == 2 and report["failed"] == {"unparseable": 1, "refused": 1}
    assert report["skipped"] == {"bad_frames": 1} and report["retried"] == 2 and report["annotated"] == 4
    rows = [json.loads(line) for line in shard_paths(out, 0)[1].read_text().splitlines()]
    assert [(r["id"], r.get("value")) for r in rows] == [("s0", 7), ("s1", None), ("s2", 9), ("s4", None)]
    failures = {f["id"]: f for f in report["failures"]}
    assert failures["s1"]["raw"] == ["z"] and failures["s1"]["reason"] == "unparseable"
    # attempt 0 greedy in batches of 2 (s0,s1 then s2,s4); retries sampled
    assert [(c[0], c[2]) for c in backend.calls] == [(["q0", "q1"], 0.0), (["q2", "q4"], 0.0), (["q1", "q2"], 1.0),
                                                     (["q1"], 1.0)]
    assert backend.calls[0][3] == call_seed(3, 0, 0, 0) != backend.calls[1][3]


def test_done_shard_is_not_redone_and_other_splits_pass_through(tmp_path):
    records = _records(tmp_path, 2)
    records[1]["split"] = "val"
    path = write_samples(records, tmp_path / "in.jsonl")
    spec = plan_shards([path], 10)[0]
    out = tmp_path / "out"
    first = annotate_shard(spec, EchoJob(None, "m"), ScriptedBackend({"q0": ["1"]}), _annotate(splits=["train"]), out)
    assert first["passed"] == 1 and first["done"] == 1 and is_done(out, 0)
    again = annotate_shard(spec, EchoJob(None, "m"), ScriptedBackend({}), _annotate(splits=["train"]), out)
    assert again == first


def test_jobs_that_write_responses_leave_out_records_they_do_not_annotate(tmp_path):
    class ResponsesOnly(EchoJob):
        keeps_unannotated = False

    records = _records(tmp_path, 2)
    records[1]["split"] = "val"
    spec = plan_shards([write_samples(records, tmp_path / "in.jsonl")], 10)[0]
    report = annotate_shard(spec, ResponsesOnly(None, "m"), ScriptedBackend({"q0": ["5"]}), _annotate(splits=["train"]),
                            tmp_path / "out")
    rows = [json.loads(line) for line in shard_paths(tmp_path / "out", 0)[1].read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s0"] and report["passed"] == 1 and report["rows"] == 1


def test_merge_keeps_input_order_caps_teacher_traces_per_input_and_sums_reports(tmp_path):
    from data.annotate.runner import JobPlan, merge_outputs
    from data.partial import encode_record

    a = write_samples(_records(tmp_path, 3), tmp_path / "a.jsonl")
    b = write_samples(_records(tmp_path, 2), tmp_path / "b.jsonl")
    specs = plan_shards([a, b], 2)  # a: [0,1] [2]; b: [0,1]
    out = tmp_path / "out"
    for spec in specs:
        rows, _ = read_shard(spec)
        rows = [{**r, "id": f"{spec.input_index}/{r['id']}", "teacher_cot": {"target": "t"}} for r in rows]
        report = {"shard": spec.index, "records": len(rows), "annotated": len(rows), "done": len(rows) - 1,
                  "passed": 0, "retried": 1, "rows": len(rows), "failed": {"below_threshold": 1}, "skipped": {},
                  "failures": [{"id": rows[0]["id"], "reason": "below_threshold", "raw": ["x"]}], "skips": []}
        report_path, rows_path = shard_paths(out, spec.index)
        write_atomic(report_path, json.dumps(report).encode())
        write_atomic(rows_path, b"".join(encode_record(r) for r in rows))
    plan = JobPlan(job="cot", inputs=[str(a), str(b)], output_dir=str(out), output_file=str(out / "cot.jsonl"),
                   model_path="m", backend="hf", device="cpu", actors=1, cpus_per_actor=1, gpus_per_actor=0,
                   shards=specs, done=[s.index for s in specs])
    cfg = SimpleNamespace(annotate=SimpleNamespace(cot=SimpleNamespace(keep_per_input=[2, 0])))
    summary = merge_outputs(plan, cfg)
    merged = [json.loads(line) for line in (out / "cot.jsonl").read_text().splitlines()]
    assert [r["id"] for r in merged] == ["0/s0", "0/s1", "0/s2", "1/s0", "1/s1"]
    assert ["teacher_cot" in r for r in merged] == [True, True, False, True, True]  # cap 2 on input 0, none on 1
    assert summary["kept_per_input"] == [2, 2] and summary["dropped_by_keep_per_input"] == 1
    assert summary["done"] == 5 - 3 and summary["failed"] == {"below_threshold": 3} and summary["retried"] == 3
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["0/s0", "0/s2", "1/s0"] and failures[0]["input"] == str(a)
