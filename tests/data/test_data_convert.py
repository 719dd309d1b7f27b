"""data.convert davis17: a tiny DAVIS-2017 tree + Ref-DAVIS17 text files -> read back with the davis reader."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from data import convert
from data import io as data_io
from data.build import build_samples, load_samples
from data.readers import open_dataset
from rl.config import DataConfig

H, W = 24, 32
#: video -> (split file, number of frames, number of objects)
VIDEOS = {"bear": ("train", 3, 1), "classic-car": ("train", 2, 2), "dogs": ("val", 3, 2), "no-text": ("val", 2, 1)}


def _ids(video: str, t: int, objects: int) -> np.ndarray:
    """Object-id map of a frame: object k fills a vertical band that moves and changes height with t."""
    ids = np.zeros((H, W), np.uint8)
    for k in range(1, objects + 1):
        x0 = (4 * k + 3 * t + len(video)) % (W - 6)
        ids[2 + k + 3 * ((t + k) % 3):H - 2, x0:x0 + 5] = k
    return ids


def write_davis(root: Path) -> dict[str, np.ndarray]:
    """A DAVIS-2017 tree as released; returns ``{video: T x H x W ids}``."""
    rng = np.random.default_rng(0)
    truth = {}
    for video, (_, frames, objects) in VIDEOS.items():
        truth[video] = np.stack([_ids(video, t, objects) for t in range(frames)])
        for t in range(frames):
            data_io.write_jpeg(root / "JPEGImages" / "480p" / video / f"{t:05d}.jpg",
                               rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
            data_io.write_palette_png(root / "Annotations" / "480p" / video / f"{t:05d}.png", truth[video][t])
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    for name in ("train", "val"):
        (sets / f"{name}.txt").write_text("".join(f"{v}\n" for v, (s, _, _) in VIDEOS.items() if s == name))
    return truth


#: The four released files; annotator 2's are Latin-1. One misspelt name (clasic-car), one video
#: in no split file (ghost), two malformed lines (bad object id, no quotes).
EXPRESSIONS = {
    "Davis17_annot1.txt": ['bear 1 "a brown bear"', 'clasic-car 1 "a red car"', 'clasic-car 2 "a man"',
                           'dogs 2 "the dog on the right"', 'dogs 1 "the dog on the left"', 'ghost 1 "nobody"'],
    "Davis17_annot1_full_video.txt": ['bear 1 "a bear walking"', 'classic-car 1 "a car driving by"',
                                      'classic-car 2 "a man walking"', 'dogs 1 "a dog running left"',
                                      'dogs 2 "a dog running right"', 'dogs x "broken id"'],
    "Davis17_annot2.txt": ['bear 1 "big bear"', 'classic-car 1 "old car"', 'classic-car 2 "man in a café"',
                           'dogs 1 "left dog"', 'dogs 2 "right dog"'],
    "Davis17_annot2_full_video.txt": ['bear 1 "bear on rocks"', 'classic-car 1 "car"', 'classic-car 2 "a man"',
                                      'dogs 1 "dog one"', 'dogs 2 no quotes here', ''],
}


def write_expressions(folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, lines in EXPRESSIONS.items():
        encoding = "latin-1" if "annot2" in name else "utf-8"
        (folder / name).write_bytes("\r\n".join(lines).encode(encoding))


@pytest.fixture()
def sources(tmp_path):
    truth = write_davis(tmp_path / "DAVIS")
    write_expressions(tmp_path / "refdavis" / "davis_text_annotations")
    return tmp_path, truth


def _convert(tmp_path: Path, out: str = "out", **kw) -> convert.ConvertReport:
    return convert.convert_davis17(tmp_path / "DAVIS", tmp_path / "refdavis", tmp_path / out, **kw)


def test_converted_layout_reads_back_with_the_davis_reader(sources, caplog):
    tmp_path, truth = sources
    with caplog.at_level(logging.WARNING, logger="data.convert"):
        report = _convert(tmp_path)
    assert report.malformed_lines == 2 and report.renamed_lines == 2
    assert report.unknown_videos == ["ghost"] and report.videos_without_expressions == ["no-text"]
    assert dict(report.videos) == {"train": 2, "valid": 1}
    assert dict(report.objects) == {"train": 3, "valid": 2}
    assert dict(report.expressions) == {"train": 12, "valid": 7}
    assert sum("malformed line" in r.getMessage() for r in caplog.records) == 2
    out = tmp_path / "out"
    assert (out / "meta_expressions" / "valid" / "meta_expressions.json").is_file()
    assert (out / "valid" / "JPEGImages" / "dogs").is_symlink()

    valid = open_dataset(out, "davis")                     # the davis reader's default split: valid
    assert valid.video_ids() == ["dogs"]
    dogs = valid["dogs"]
    # per object: annotator 1 first frame, annotator 1 full video, annotator 2 first frame, annotator 2 full video
    assert [(e.text, e.obj_ids) for e in dogs.expressions.values()] == [
        ("the dog on the left", ("1",)), ("a dog running left", ("1",)), ("left dog", ("1",)), ("dog one", ("1",)),
        ("the dog on the right", ("2",)), ("a dog running right", ("2",)), ("right dog", ("2",))]
    assert list(dogs.expressions) == [str(i) for i in range(7)]
    assert dogs.num_frames == 3 and (dogs.height, dogs.width) == (H, W) and dogs.has_masks
    for t in range(dogs.num_frames):
        for obj in ("1", "2"):
            assert np.array_equal(dogs.object_mask(obj, t), truth["dogs"][t] == int(obj))

    train = open_dataset(out, "davis", split="train")
    assert train.video_ids() == ["bear", "classic-car"]
    car = train["classic-car"]
    assert [e.text for e in car.expressions.values()][:4] == ["a red car", "a car driving by", "old car", "car"]
    assert car.expressions["6"].text == "man in a café"   # Latin-1 decoded
    assert car.num_frames == 2 and car.frame_names == ["00000", "00001"]
    assert np.array_equal(car.object_mask("2", 1), truth["classic-car"][1] == 2)


def test_copy_mode_and_refusal_to_overwrite(sources):
    tmp_path, truth = sources
    _convert(tmp_path, copy=True)
    frames = tmp_path / "out" / "train" / "JPEGImages" / "bear"
    assert frames.is_dir() and not frames.is_symlink() and len(list(frames.glob("*.jpg"))) == 3
    bear = open_dataset(tmp_path / "out", "davis", split="train")["bear"]
    assert np.array_equal(bear.object_mask("1", 2), truth["bear"][2] == 1)
    with pytest.raises(convert.ConvertError, match="--force"):
        _convert(tmp_path)
    _convert(tmp_path, force=True)
    assert frames.is_symlink()


def test_build_ktg_samples_from_the_converted_set(sources):
    tmp_path, truth = sources
    _convert(tmp_path)
    cfg = DataConfig(format="davis", root=str(tmp_path / "out"), split="train", task="ktg", input_size=[W, H],
                     val_fraction=0.0)
    report = build_samples(cfg, tmp_path / "s.jsonl", progress=False)
    records = load_samples(tmp_path / "s.jsonl")
    assert report.built == len(records) == 12 and not report.skipped
    for rec in records:
        ids = truth[rec["video_id"]]
        obj = int(open_dataset(tmp_path / "out", "davis", "train")[rec["video_id"]]
                  .expressions[rec["exp_id"]].obj_ids[0])
        areas = (ids == obj).reshape(len(ids), -1).sum(axis=1)
        assert rec["ground_truth"]["keyframe"] == int(np.argmax(areas))   # largest target, first on ties


def test_cli_help_counts_and_bad_input(sources, capsys):
    tmp_path, _ = sources
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exc:
        convert.main(["--help"])
    assert exc.value.code == 0
    assert "davis17" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        convert.main(["davis17", "--help"])
    assert exc.value.code == 0 and "--davis-root" in capsys.readouterr().out
    assert sorted(tmp_path.rglob("*")) == before                       # help wrote nothing
    assert convert.main(["davis17", "--davis-root", str(tmp_path), "--expressions",   # the folder holding DAVIS/
                         str(tmp_path / "refdavis" / "davis_text_annotations"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "train: 2 videos, 3 objects, 12 expressions" in out and "2 malformed lines" in out
    assert convert.main(["davis17", "--davis-root", str(tmp_path / "nowhere"), "--expressions",
                         str(tmp_path / "refdavis"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing DAVIS folder" in capsys.readouterr().err and not (tmp_path / "o2").exists()
