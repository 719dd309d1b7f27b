"""data.build on a tiny synthetic data set: JSONL == parquet, bad data reported and counted, CLI, splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from data import cues
from data import rle as rle_codec
from data.build import BuildReport, build_samples, load_samples, main, split_videos, write_samples
from data.readers import open_dataset
from rl.config import DataConfig, SyntheticConfig

SYN = dict(num_videos=5, num_frames=5, height=48, width=64, seed=1)


def data_cfg(root: Path, task: str = "ktg", **kw) -> DataConfig:
    return DataConfig(format="synthetic", root=str(root), task=task, input_size=[32, 40],
                      synthetic=SyntheticConfig(**SYN), **kw)


def meta(root: Path) -> dict:
    return json.loads((root / "train" / "meta_expressions.json").read_text())["videos"]


@pytest.mark.parametrize("task", ["ktg", "aks", "veason"])
def test_jsonl_and_parquet_hold_the_same_records(tmp_path, task):
    cfg = data_cfg(tmp_path / "syn", task)
    rep_j = build_samples(cfg, tmp_path / "out" / "s.jsonl", progress=False)
    rep_p = build_samples(cfg, tmp_path / "out" / "s.parquet", progress=False)
    recs_j, recs_p = load_samples(tmp_path / "out" / "s.jsonl"), load_samples(tmp_path / "out" / "s.parquet")
    assert rep_j.built == rep_p.built == len(recs_j) > 0
    assert recs_j == recs_p
    assert len({r["id"] for r in recs_j}) == len(recs_j)
    assert not rep_j.skipped
    for rec in recs_j:
        assert rec["task"] == task and all(Path(p).is_file() for p in rec["images"])
    if task == "aks":
        answers = Counter(r["ground_truth"]["answer"] for r in recs_j)
        assert answers["A"] == answers["B"] == rep_j.by_answer["A"]


def test_ktg_boxes_match_cues_recomputed_from_the_reader(tmp_path):
    cfg = data_cfg(tmp_path / "syn", "ktg")
    build_samples(cfg, tmp_path / "s.jsonl", progress=False)
    reader = open_dataset(tmp_path / "syn", "synthetic", split="train")
    size = cfg.input_size
    checked = 0
    for rec in load_samples(tmp_path / "s.jsonl"):
        video = reader[rec["video_id"]]
        exp = video.expressions[rec["exp_id"]]
        key = rec["ground_truth"]["keyframe"]
        union_areas = [int(video.expression_mask(rec["exp_id"], t).sum()) for t in range(video.num_frames)]
        if not exp.obj_ids:
            assert rec["ground_truth"]["objects"] == []
            continue
        assert key == int(np.argmax(union_areas))
        resized = [cues.resize_mask(video.object_mask(o, key), size) for o in exp.obj_ids]
        resized = [m for m in resized if m.any()]
        assert [o["bbox_2d"] for o in rec["ground_truth"]["objects"]] == [cues.mask_to_box(m) for m in resized]
        assert [o["point_2d"] for o in rec["ground_truth"]["objects"]] == [cues.inscribed_circle_point(m) for m in resized]
        assert all(np.array_equal(rle_codec.decode(r), m) for r, m in zip(rec["ground_truth"]["masks"], resized))
        checked += 1
    assert checked > 0


def test_split_is_by_video(tmp_path):
    cfg = data_cfg(tmp_path / "syn", "ktg", val_fraction=0.4)
    rep = build_samples(cfg, tmp_path / "s.jsonl", progress=False)
    recs = load_samples(tmp_path / "s.jsonl")
    by_video = {}
    for r in recs:
        by_video.setdefault(r["video_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_video.values())
    val_videos = {v for v, s in by_video.items() if s == {"val"}}
    assert len(val_videos) == 2  # round(0.4 * 5)
    assert len(load_samples(tmp_path / "s.jsonl", split="val")) == rep.by_split["val"]
    assert len(load_samples(tmp_path / "s.jsonl", split="train")) == rep.by_split["train"]


def test_split_videos_rules():
    ids = [f"v{i}" for i in range(10)]
    val = split_videos(ids, 0.3, seed=4)
    assert len(val) == 3 and val <= set(ids)
    assert split_videos(list(reversed(ids)), 0.3, seed=4) == val
    assert split_videos(ids, 0.0, 0) == set()
    assert split_videos(["only"], 0.5, 0) == set()
    assert len(split_videos(ids, 0.01, 0)) == 1 and len(split_videos(ids, 0.99, 0)) == 9
    with pytest.raises(ValueError, match="val_fraction"):
        split_videos(ids, 1.0, 0)


def test_max_samples(tmp_path):
    rep = build_samples(data_cfg(tmp_path / "syn", "ktg", max_samples=7), tmp_path / "k.jsonl", progress=False)
    assert rep.built == 7 and rep.filtered["max_samples"] > 0
    rep = build_samples(data_cfg(tmp_path / "syn", "aks", max_samples=2), tmp_path / "a.jsonl", progress=False)
    assert rep.built == 2 and rep.by_answer == Counter({"A": 1, "B": 1})


def test_corrupt_frames_are_skipped_reported_and_counted(tmp_path):
    root = tmp_path / "syn"
    full = build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    videos = meta(root)
    bad_vid = sorted(videos)[1]
    frame_dir = root / "train" / "JPEGImages" / bad_vid
    for frame in frame_dir.iterdir():
        frame.write_bytes(b"\xff\xd8 truncated jpeg")
    rep = build_samples(data_cfg(root, "ktg"), tmp_path / "bad.jsonl", progress=False)
    n_bad = len(videos[bad_vid]["expressions"])
    assert rep.skipped == Counter({"frame_unreadable": n_bad})
    assert rep.built == full.built - n_bad
    assert all(str(frame_dir) in line for line in rep.problems) and len(rep.problems) == n_bad
    assert "frame_unreadable" in rep.summary()
    assert bad_vid not in {r["video_id"] for r in load_samples(tmp_path / "bad.jsonl")}


def test_corrupt_mask_is_skipped_reported_and_counted(tmp_path):
    root = tmp_path / "syn"
    full = build_samples(data_cfg(root, "ktg"), tmp_path / "ok.jsonl", progress=False)
    mask_dict_path = root / "train" / "mask_dict.json"
    mask_dict = json.loads(mask_dict_path.read_text())
    anno = sorted(mask_dict)[0]
    mask_dict[anno][0] = {"size": [SYN["height"], SYN["width"]], "counts": "0"}  # covers 0 pixels
    mask_dict_path.write_text(json.dumps(mask_dict))
    hit = [(v, e) for v, entry in meta(root).items() for e, x in entry["expressions"].items()
           if anno in [str(a) for a in x.get("anno_id", [])]]
    assert hit
    rep = build_samples(data_cfg(root, "ktg"), tmp_path / "bad.jsonl", progress=False)
    assert rep.skipped == Counter({"mask_unreadable": len(hit)})
    assert rep.built == full.built - len(hit)
    assert all(str(mask_dict_path) in line for line in rep.problems)
    ids = {(r["video_id"], r["exp_id"]) for r in load_samples(tmp_path / "bad.jsonl")}
    assert not ids & set(hit)


def test_cli_writes_and_rejects_bad_arguments(tmp_path, capsys):
    out = tmp_path / "cli.parquet"
    args = [f"data.root={tmp_path / 'syn'}", "data.format=synthetic", "data.task=veason", f"out={out}",
            "data.input_size=[32,32]", "data.synthetic.num_videos=3", "data.synthetic.num_frames=4",
            "data.synthetic.height=48", "data.synthetic.width=48", "data.seed=2"]
    assert main(args) == 0
    assert "built" in capsys.readouterr().out
    recs = load_samples(out)
    assert recs and all(r["input_size"] == [32, 32] and r["reward"] == "veason_r1" for r in recs)
    assert main(args[:-1] + ["data.bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main([a for a in args if not a.startswith("out=")]) == 2
    assert "out=" in capsys.readouterr().err
    assert main(args + ["trainer.total_steps=3"]) == 2
    assert main(args + ["reward.name=visionreasoner"]) == 2  # a KTG reward for a Veason build
    assert "does not fit" in capsys.readouterr().err


def test_load_samples_errors(tmp_path):
    good = {"id": "a", "task": "ktg", "images": [], "prompt": "p", "ground_truth": {"objects": []}}
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(good) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"x\.jsonl:2"):
        load_samples(path)
    path.write_text(json.dumps({"id": "b"}) + "\n")
    with pytest.raises(ValueError, match="lacks keys"):
        load_samples(path)
    with pytest.raises(FileNotFoundError):
        load_samples(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=".jsonl or .parquet"):
        write_samples([good], tmp_path / "x.csv")
    write_samples([good], tmp_path / "y.parquet")
    assert load_samples(tmp_path / "y.parquet") == [good]


def test_report_summary_lists_reasons(tmp_path):
    rep = BuildReport(out_path=tmp_path / "x.jsonl", task="ktg")
    rep.add_skip("frame_unreadable", "boom", "/some/frame.jpg")
    assert rep.skipped["frame_unreadable"] == 1 and "/some/frame.jpg" in rep.problems[0]
    assert "frame_unreadable 1" in rep.summary()


def test_missing_frame_is_skipped_with_its_path(tmp_path):
    root = tmp_path / "syn"
    records = load_samples_after_build(root, tmp_path / "ok.jsonl")
    victim = records[0]
    frame_name = Path(victim["images"][0]).name.split("_")[0]
    frame = root / "train" / "JPEGImages" / victim["video_id"] / f"{frame_name}.jpg"
    frame.unlink()
    rep = build_samples(data_cfg(root, "ktg"), tmp_path / "bad.jsonl", progress=False)
    assert rep.skipped["frame_missing"] >= 1 and set(rep.skipped) == {"frame_missing"}
    assert any(str(frame) in line for line in rep.problems)
    assert victim["id"] not in {r["id"] for r in load_samples(tmp_path / "bad.jsonl")}


def load_samples_after_build(root: Path, out: Path) -> list[dict]:
    build_samples(data_cfg(root, "ktg"), out, progress=False)
    return load_samples(out)
