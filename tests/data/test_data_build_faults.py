"""data.build under bad text and late failures: one bad item never takes the build down.

* An invalid code point in an expression (a lone surrogate from a ``\\udc80`` JSON escape, or
  raw bytes that are not UTF-8) is replaced by U+FFFD where the text is read, logged with the
  file, the video and the expression, and counted in ``BuildReport.repaired``.
* A record that still holds text that cannot be written as UTF-8 (here: a video id) is a
  counted skip (``text_invalid``) naming the metadata file; every other record is written.
* Records are streamed to ``<stem>.partial.jsonl`` while they are built: a failure after some
  records were built leaves them there (and no final file); a successful build removes it.
* ``load_samples`` replaces invalid code points too and names the line.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from data import build as build_mod
from data import samples as S
from data.build import build_samples, load_samples, main
from tests.data.test_data_build import data_cfg, meta

REPLACEMENT = "\ufffd"


def partial_path(out: Path) -> Path:
    """Where a build streams its records while it runs: ``<stem>.partial.jsonl`` beside the output."""
    return out.with_name(out.stem + ".partial.jsonl")


def _set_meta(root: Path, videos: dict) -> Path:
    path = root / "train" / "meta_expressions.json"
    doc = json.loads(path.read_text())
    doc["videos"] = videos
    path.write_text(json.dumps(doc))  # ensure_ascii: a lone surrogate is written as the escape \udc80
    return path


def _first_expression(root: Path) -> tuple[dict, str, str]:
    videos = meta(root)
    vid = sorted(videos)[1]
    exp_id = sorted(videos[vid]["expressions"])[0]
    return videos, vid, exp_id


def _no_surrogates(text: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_lone_surrogate_in_an_expression_is_replaced_counted_and_the_rest_is_built(tmp_path, caplog):
    root = tmp_path / "syn"
    full = build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    good = {r["id"]: r for r in load_samples(tmp_path / "ok.jsonl")}
    videos, vid, exp_id = _first_expression(root)
    original = videos[vid]["expressions"][exp_id]["exp"]
    videos[vid]["expressions"][exp_id]["exp"] = "the \udc80 " + original
    meta_path = _set_meta(root, videos)
    assert "\\udc80" in meta_path.read_text()

    with caplog.at_level(logging.WARNING):
        rep = build_samples(data_cfg(root, "ktg"), tmp_path / "bad.jsonl", progress=False)
    assert rep.built == full.built and not rep.skipped
    assert dict(rep.repaired) == {"invalid_text": 1}
    assert any(str(meta_path) in line and repr(vid) in line and repr(exp_id) in line for line in rep.problems)
    assert "repaired" in rep.summary()
    records = load_samples(tmp_path / "bad.jsonl")
    assert len(records) == full.built
    changed = [r for r in records if r["query"] != good[r["id"]]["query"]]
    assert [r["query"] for r in changed] == ["the " + REPLACEMENT + " " + original]
    assert all(r == good[r["id"]] for r in records if r not in changed)
    assert any(str(meta_path) in rec.getMessage() for rec in caplog.records)


def test_raw_bytes_that_are_not_utf8_are_replaced_too(tmp_path):
    root = tmp_path / "syn"
    full = build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    videos, vid, exp_id = _first_expression(root)
    videos[vid]["expressions"][exp_id]["exp"] = "MARKER the thing"
    meta_path = _set_meta(root, videos)
    meta_path.write_bytes(meta_path.read_bytes().replace(b"MARKER", b"caf\xe9"))   # latin-1, not UTF-8
    rep = build_samples(data_cfg(root, "ktg"), tmp_path / "bad.jsonl", progress=False)
    assert rep.built == full.built and rep.repaired["invalid_text"] == 1
    queries = [r["query"] for r in load_samples(tmp_path / "bad.jsonl")]
    assert "caf" + REPLACEMENT + " the thing" in queries


def test_a_record_that_cannot_be_written_is_a_counted_skip(tmp_path):
    root = tmp_path / "syn"
    full = build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    videos = meta(root)
    vid = sorted(videos)[0]
    # A video id holding the byte 0x80: its folder exists (bytes name), its id is not valid text.
    bad_vid = vid + "\udc80"
    os.rename(root / "train" / "JPEGImages" / vid, os.fsencode(root / "train" / "JPEGImages" / vid) + b"\x80")
    videos = {(bad_vid if k == vid else k): v for k, v in videos.items()}
    meta_path = _set_meta(root, videos)
    n_bad = len(videos[bad_vid]["expressions"])

    rep = build_samples(data_cfg(root, "ktg"), tmp_path / "bad.jsonl", progress=False)
    assert dict(rep.skipped) == {"text_invalid": n_bad}
    assert rep.built == full.built - n_bad
    assert all(str(meta_path) in line for line in rep.problems)
    records = load_samples(tmp_path / "bad.jsonl")
    assert len(records) == rep.built and all(_no_surrogates(json.dumps(r, ensure_ascii=False)) for r in records)


def test_a_late_failure_keeps_the_records_built_so_far(tmp_path, monkeypatch, capsys):
    root = tmp_path / "syn"
    full = build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    assert not partial_path(tmp_path / "ok.jsonl").exists()          # removed after a successful build
    good = {r["id"]: r for r in load_samples(tmp_path / "ok.jsonl")}

    def disk_full(records, out_path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_mod, "write_samples", disk_full)
    out = tmp_path / "late.parquet"
    with pytest.raises(OSError, match="No space left"):
        build_samples(data_cfg(root, "ktg"), out, progress=False)
    assert not out.exists()
    kept = load_samples(partial_path(out))
    assert len(kept) == full.built and {r["id"]: r for r in kept} == good

    # The CLI names the kept file and exits non-zero.
    args = [f"data.root={root}", "data.format=synthetic", "data.task=ktg", f"out={out}", "data.input_size=[32,40]",
            *(f"data.synthetic.{k}={v}" for k, v in dict(num_videos=5, num_frames=5, height=48, width=64,
                                                              seed=1).items())]
    assert main(args) == 2
    assert str(partial_path(out)) in capsys.readouterr().err


def test_an_interrupt_mid_build_keeps_the_finished_records(tmp_path, monkeypatch):
    root = tmp_path / "syn"
    build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    real = S.build_ktg_record
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(S, "build_ktg_record", flaky)
    out = tmp_path / "int.jsonl"
    with pytest.raises(KeyboardInterrupt):
        build_samples(data_cfg(root, "ktg"), out, progress=False)
    assert not out.exists()
    assert len(load_samples(partial_path(out))) == 4


def test_load_samples_replaces_invalid_text_and_names_the_line(tmp_path, caplog):
    good = {"id": "a", "task": "ktg", "images": [], "prompt": "p", "query": "x", "ground_truth": {"objects": []}}
    path = tmp_path / "s.jsonl"
    lines = [json.dumps(good).encode(), json.dumps({**good, "id": "b", "query": "x\udc80y"}).encode(),
             json.dumps({**good, "id": "c", "query": "QQ"}).encode().replace(b"QQ", b"\xff\xfe")]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with caplog.at_level(logging.WARNING):
        records = load_samples(path)
    assert [r["query"] for r in records] == ["x", "x" + REPLACEMENT + "y", REPLACEMENT * 2]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"{path}:2" in messages and f"{path}:3" in messages and f"{path}:1" not in messages


def test_the_training_launcher_builds_its_data_despite_a_bad_expression(tmp_path):
    """``launch.train`` builds its samples through ``launch.common.prepare_data``: the same repair."""
    from launch.common import prepare_data
    from rl.config import load_config

    root = tmp_path / "syn"
    syn = dict(num_videos=5, num_frames=5, height=48, width=64, seed=1)
    items = [f"data.root={root}", "data.format=synthetic", "data.task=ktg", "data.input_size=[32,40]",
             f"trainer.run_dir={tmp_path / 'run'}", *(f"data.synthetic.{k}={v}" for k, v in syn.items())]
    first = prepare_data(load_config(items))
    videos, vid, exp_id = _first_expression(root)
    videos[vid]["expressions"][exp_id]["exp"] = "\udc80" + videos[vid]["expressions"][exp_id]["exp"]
    _set_meta(root, videos)
    again = prepare_data(load_config(items))
    assert len(again.train) + len(again.val) == len(first.train) + len(first.val)
    queries = [r["query"] for r in again.train + again.val]
    assert sum(q.startswith(REPLACEMENT) for q in queries) == 1 and all(_no_surrogates(q) for q in queries)
