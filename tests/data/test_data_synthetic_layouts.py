"""Synthetic data in each benchmark's released layout, read back with the real readers (round trip)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from data import synthetic
from data import synthetic_layouts as layouts
from data.build import build_samples, load_samples
from data.readers import open_dataset
from data.synthetic import SceneRules, generate_synthetic_dataset
from data.types import NO_TARGET, REFERRING
from rl.config import DataConfig, SyntheticConfig
from rl.eval.datasets import gt_union_areas, open_subset_reader
from tests.layout_helpers import write_every_layout

CFG = SyntheticConfig(num_videos=3, num_frames=3, height=40, width=48, max_objects=3, seed=5)
#: layout -> the files one split consists of (relative to the data set root)
FILES = {
    "revos": ["{s}/meta_expressions.json", "{s}/mask_dict.json", "{s}/mask_dict_foreground.json"],
    "mevis": ["{s}/meta_expressions.json", "{s}/mask_dict.json"],
    "refytvos": ["meta_expressions/{s}/meta_expressions.json", "{s}/meta.json"],
    "davis": ["meta_expressions/{s}/meta_expressions.json", "{s}/meta.json"],
}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """``{layout: root}``: train + the evaluation split of every layout."""
    return write_every_layout(tmp_path_factory, CFG)


def drawn_videos(split: str) -> list[synthetic.SyntheticVideo]:
    rules = SceneRules()
    return [synthetic.generate_video(CFG, rules, synthetic.video_rng(CFG, split, i)) for i in range(CFG.num_videos)]


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_files_of_the_released_layout(written, layout):
    root = written[layout]
    for split in ("train", layouts.EVAL_SPLITS[layout]):
        for name in FILES[layout]:
            assert (root / name.format(s=split)).is_file(), name
        assert (root / split / "JPEGImages" / "synth_00000" / "00002.jpg").is_file()
    meta_path = root / FILES[layout][0].format(s="train")
    entries = json.loads(meta_path.read_text())["videos"]
    entry = next(iter(entries.values()))
    if layout == "mevis":   # MeViS: no sizes, types or object list
        assert set(entry) == {"vid_id", "frames", "expressions"}
        assert all(set(e) == {"exp", "obj_id", "anno_id"} for e in entry["expressions"].values())
        assert not (root / "train" / "mask_dict_foreground.json").exists()
    if layout in ("refytvos", "davis"):   # one object id (a string) per expression
        assert set(entry) == {"expressions", "frames"}
        assert all(set(e) == {"exp", "obj_id"} and isinstance(e["obj_id"], str) for e in entry["expressions"].values())
        png = root / "train" / "Annotations" / "synth_00000" / "00000.png"
        assert png.is_file() and not (root / "train" / "mask_dict.json").exists()


@pytest.mark.parametrize("layout", ["revos", "mevis"])
def test_rle_layouts_round_trip(written, layout):
    for split in ("train", layouts.EVAL_SPLITS[layout]):
        reader = open_dataset(written[layout], layout, split=split)
        assert reader.video_ids() == [f"synth_{i:05d}" for i in range(CFG.num_videos)]
        next_anno = 0
        for vid, drawn in zip(reader.video_ids(), drawn_videos(split)):
            sample = reader[vid]
            anno = [str(next_anno + k) for k in range(len(drawn.objects))]
            next_anno += len(drawn.objects)
            assert (sample.num_frames, sample.height, sample.width) == (CFG.num_frames, CFG.height, CFG.width)
            assert sample.has_masks
            expected = [(e.text, tuple(anno[k] for k in e.targets),
                         e.type_id if layout == "revos" else (REFERRING if e.targets else NO_TARGET))
                        for e in drawn.expressions]
            assert [(e.text, e.obj_ids, e.type_id) for e in sample.expressions.values()] == expected
            for k, aid in enumerate(anno):
                for t in range(CFG.num_frames):
                    assert np.array_equal(sample.object_mask(aid, t), drawn.masks[k, t])
            assert np.abs(sample.load_frame(1).astype(int) - drawn.frames[1]).mean() < 4   # JPEG


@pytest.mark.parametrize("layout", ["refytvos", "davis"])
def test_palette_layouts_round_trip(written, layout):
    for split in ("train", "valid"):
        reader = open_dataset(written[layout], layout, split=split)
        drawn_all = drawn_videos(split)
        kept = [i for i, d in enumerate(drawn_all) if any(len(e.targets) == 1 for e in d.expressions)]
        assert reader.video_ids() == [f"synth_{i:05d}" for i in kept]
        for index in kept:
            drawn, sample = drawn_all[index], reader[f"synth_{index:05d}"]
            single = [(e.text, e.targets[0]) for e in drawn.expressions if len(e.targets) == 1]
            if layout == "davis":
                single.sort(key=lambda item: item[1])   # grouped by object, drawn order within
            assert [(e.text, e.obj_ids) for e in sample.expressions.values()] == [
                (text, (str(k + 1),)) for text, k in single]
            assert sample.has_masks and sample.num_frames == CFG.num_frames
            visible = [k for k in range(len(drawn.objects)) if drawn.masks[k].any()]
            assert sample.extra["categories"] == {str(k + 1): drawn.objects[k].shape for k in visible}
            for k in visible:
                for t in range(CFG.num_frames):
                    assert np.array_equal(sample.object_mask(str(k + 1), t), drawn.masks[k, t])


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_training_samples_and_evaluation_reader(written, layout, tmp_path):
    cfg = DataConfig(format=layout, root=str(written[layout]), split="train", task="ktg", input_size=[24, 20],
                     val_fraction=0.0)
    report = build_samples(cfg, tmp_path / "s.jsonl", progress=False)
    records = load_samples(tmp_path / "s.jsonl")
    assert report.built == len(records) > 0 and not report.skipped
    assert {r["video_id"] for r in records} <= {f"synth_{i:05d}" for i in range(CFG.num_videos)}
    # the evaluation reads the layout's evaluation split with masks (J&F needs them)
    split = layouts.EVAL_SPLITS[layout]
    full = open_dataset(written[layout], layout, split)
    reader = open_subset_reader(str(written[layout]), layout, split, tuple(full.video_ids()[:1]))
    sample = reader[reader.video_ids()[0]]
    drawn = drawn_videos(split)[int(sample.video_id.split("_")[1])]
    for exp_id, areas in gt_union_areas(sample).items():
        if layout in ("refytvos", "davis"):   # palette index = object index + 1
            objects = [int(o) - 1 for o in sample.expressions[exp_id].obj_ids]
        else:                                  # MeViS / ReVOS obj_id: object indices within the video
            objects = sample.extra["expression_obj_ids"][exp_id]
        union = drawn.masks[objects].any(axis=0) if objects else np.zeros((CFG.num_frames, 1), bool)
        expected = union.reshape(CFG.num_frames, -1).sum(axis=1)
        assert areas.tolist() == expected.tolist()


def test_default_layout_keeps_its_config_hash_and_marker(tmp_path):
    rules = SceneRules()
    payload = {"config": dataclasses.asdict(CFG), "split": "train", "rules": dataclasses.asdict(rules),
               "version": synthetic.GENERATOR_VERSION}
    before = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    assert synthetic.config_hash(CFG, "train", rules) == synthetic.config_hash(CFG, "train", rules, "revos") == before
    assert len({synthetic.config_hash(CFG, "train", rules, layout) for layout in layouts.LAYOUTS}) == 4
    folder = generate_synthetic_dataset(tmp_path, SyntheticConfig(num_videos=1, num_frames=2, height=32, width=32))
    assert "layout" not in json.loads((folder / synthetic.MARKER_NAME).read_text())


def test_two_folder_split_is_reused_refused_and_never_left_half_written(tmp_path, monkeypatch):
    small = SyntheticConfig(num_videos=1, num_frames=2, height=40, width=40, seed=1)
    generate_synthetic_dataset(tmp_path / "a", small, "train", layout="refytvos")
    meta = tmp_path / "a" / "meta_expressions" / "train" / "meta_expressions.json"
    stamp = meta.stat().st_mtime_ns
    generate_synthetic_dataset(tmp_path / "a", small, "train", layout="refytvos")
    assert meta.stat().st_mtime_ns == stamp                       # up to date: reused
    (tmp_path / "a" / "meta_expressions" / "train" / synthetic.MARKER_NAME).unlink()
    with pytest.raises(FileExistsError, match="not a synthetic data set"):   # no marker: not ours
        generate_synthetic_dataset(tmp_path / "a", small, "train", layout="refytvos")

    real = synthetic._write_split

    def dies_midway(*args):
        real(*args)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(synthetic, "_write_split", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic_dataset(tmp_path / "b", small, "train", layout="davis")
    assert list((tmp_path / "b").iterdir()) == []


def test_cli_layouts_splits_and_help(tmp_path, capsys):
    args = ["num_videos=1", "num_frames=2", "height=40", "width=40"]
    assert synthetic.main([str(tmp_path / "m"), "layout=mevis", *args]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "m" / "train"), str(tmp_path / "m" / "valid_u")]
    assert synthetic.main([str(tmp_path / "r"), "layout=refytvos", "split=valid", *args]) == 0
    assert (tmp_path / "r" / "meta_expressions" / "valid" / "meta_expressions.json").is_file()
    assert not (tmp_path / "r" / "train").exists()
    for bad in (["layout=coco"], ["split="], ["no_such_key=1"]):
        with pytest.raises(SystemExit) as exc:
            synthetic.main([str(tmp_path / "x"), *bad])
        assert exc.value.code == 2
    capsys.readouterr()
    assert synthetic.main(["--help"]) == 0 and synthetic.main([str(tmp_path / "h"), "layout=davis", "-h"]) == 0
    text = capsys.readouterr().out
    assert all(f"layout={name}" in text for name in layouts.LAYOUTS) and "num_videos=32" in text
    assert not (tmp_path / "x").exists() and not (tmp_path / "h").exists()
