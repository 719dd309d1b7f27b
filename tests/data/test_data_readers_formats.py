"""Readers on hand-built tiny fixtures in the four released layouts (MeViS, ReVOS, Ref-YouTube-VOS, Ref-DAVIS17).

Fixtures are written here from numpy arrays (palette PNGs, RLE mask dicts) and read back exactly.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import data.io as data_io
import data.rle as rle
from data.readers import READERS, open_dataset
from data.types import NO_TARGET, REASONING, REFERRING

H, W, T = 6, 8, 3
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


def _frames(folder: Path, names: list[str]) -> None:
    for t, name in enumerate(names):
        data_io.write_jpeg(folder / f"{name}.jpg", np.full((H, W, 3), COLOURS[t % 3], np.uint8))


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


# Per-object masks per frame (None = absent) shared by the MeViS / ReVOS fixtures.
OBJ_A = [_box(0, 2, 0, 3), _box(1, 3, 1, 4), None]
OBJ_B = [None, _box(3, 6, 5, 8), _box(2, 6, 4, 8)]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _mask_dict() -> dict:
    return {str(aid): [None if m is None else rle.encode(m) for m in masks]
            for aid, masks in ((11, OBJ_A), (12, OBJ_B))}


def _mevis_entry() -> dict:
    return {"vid_id": 0, "frames": ["00000", "00001", "00002"], "expressions": {
        "0": {"exp": "the cat on the left", "obj_id": [0], "anno_id": [11]},
        "1": {"exp": "both animals", "obj_id": [0, 1], "anno_id": [11, 12]},
    }}


def build_mevis(root: Path) -> None:
    split = root / "train"
    _write_json(split / "meta_expressions.json", {"videos": {"vidA": _mevis_entry()}})
    _write_json(split / "mask_dict.json", _mask_dict())
    _frames(split / "JPEGImages" / "vidA", ["00000", "00001", "00002"])
    # valid: no ground truth released
    _write_json(root / "valid" / "meta_expressions.json", {"videos": {"vidV": {
        "vid_id": 5, "frames": ["00000"], "expressions": {"0": {"exp": "a dog"}}}}})
    _frames(root / "valid" / "JPEGImages" / "vidV", ["00000"])


REVOS_VID = "UVO/all/-xYz"


def build_revos(root: Path) -> None:
    entry = _mevis_entry()
    entry.update(height=H, width=W)
    entry["expressions"]["0"]["type_id"] = REFERRING
    entry["expressions"]["1"]["type_id"] = REASONING
    entry["expressions"]["2"] = {"exp": "the giraffe", "obj_id": [], "anno_id": [], "type_id": NO_TARGET}
    _write_json(root / "meta_expressions_valid_.json", {"videos": {REVOS_VID: entry}})
    _write_json(root / "mask_dict.json", _mask_dict())
    union = [np.zeros((H, W), bool) if (a is None and b is None) else
             (a if a is not None else 0) | (b if b is not None else 0) for a, b in zip(OBJ_A, OBJ_B)]
    _write_json(root / "mask_dict_foreground.json", {REVOS_VID: {
        "masks_rle": [rle.encode(np.asarray(u, bool)) for u in union],
        "foreground_ratio": [float(np.asarray(u).sum()) / (H * W) for u in union]}})
    _frames(root / "JPEGImages" / REVOS_VID, ["00000", "00001", "00002"])


# Ref-YouTube-VOS: palette maps per frame, pixel value = object id; frame 00010 has no PNG.
YT_IDS = {
    "00000": np.array([[0, 0, 1, 1, 0, 0, 2, 2]] * 3 + [[0] * 8] * 3, np.uint8),
    "00005": np.array([[1, 1, 1, 0, 0, 3, 3, 2]] * 6, np.uint8),
}
YT_FRAMES = ["00000", "00005", "00010"]


def build_refytvos(root: Path, split: str = "train", native_davis: bool = False) -> None:
    sub = "480p/" if native_davis else ""
    _write_json(root / "meta_expressions" / split / "meta_expressions.json", {"videos": {"yt1": {
        "expressions": {"0": {"exp": "a person riding", "obj_id": "1"}, "1": {"exp": "a horse", "obj_id": "2"},
                        "2": {"exp": "the person", "obj_id": "1"}},
        "frames": YT_FRAMES}}})
    _frames(root / split / "JPEGImages" / f"{sub}yt1", YT_FRAMES)
    for name, ids in YT_IDS.items():
        data_io.write_palette_png(root / split / "Annotations" / f"{sub}yt1" / f"{name}.png", ids)
    _write_json(root / split / "meta.json", {"videos": {"yt1": {"objects": {
        "1": {"category": "person", "frames": YT_FRAMES}, "2": {"category": "horse", "frames": YT_FRAMES},
        "3": {"category": "dog", "frames": ["00005"]}}}}})


# ----------------------------------------------------------------------- MeViS


@pytest.mark.parametrize("use_split_folder", [False, True])
def test_mevis_reads_back_exactly(tmp_path, use_split_folder):
    build_mevis(tmp_path)
    root = tmp_path / "train" if use_split_folder else tmp_path
    reader = open_dataset(root, "mevis", split="train")
    assert reader.video_ids() == ["vidA"] and len(reader) == 1
    sample = reader["vidA"]
    assert (sample.dataset, sample.split, sample.height, sample.width, sample.num_frames) == ("mevis", "train", H, W, 3)
    assert sample.frame_paths[1] == (tmp_path / "train" / "JPEGImages" / "vidA" / "00001.jpg")
    assert sample.expressions["0"].obj_ids == ("11",) and sample.expressions["1"].obj_ids == ("11", "12")
    assert sample.expressions["0"].text == "the cat on the left"
    assert {e.type_id for e in sample.expressions.values()} == {REFERRING}
    for t in range(T):
        for aid, masks in (("11", OBJ_A), ("12", OBJ_B)):
            expected = np.zeros((H, W), bool) if masks[t] is None else masks[t]
            assert np.array_equal(sample.object_mask(aid, t), expected)
        union = sample.expression_mask("1", t)
        assert union.sum() == sum(0 if m[t] is None else m[t].sum() for m in (OBJ_A, OBJ_B)) - (
            0 if OBJ_A[t] is None or OBJ_B[t] is None else (OBJ_A[t] & OBJ_B[t]).sum())
    assert sample.expression_masks("0").shape == (T, H, W)
    frame = sample.load_frame(2)
    assert frame.shape == (H, W, 3) and abs(int(frame[..., 2].mean()) - 200) < 8
    assert [s.video_id for s in reader] == ["vidA"]


def test_mevis_split_without_masks(tmp_path):
    build_mevis(tmp_path)
    sample = open_dataset(tmp_path, "mevis", split="valid")["vidV"]
    assert not sample.has_masks and sample.expressions["0"].obj_ids == ()
    assert sample.expressions["0"].type_id == REFERRING  # unknown target, not "no target"
    with pytest.raises(LookupError, match="no ground-truth masks"):
        sample.expression_mask("0", 0)


# ------------------------------------------------------------------------ ReVOS


def test_revos_reads_back_exactly(tmp_path):
    build_revos(tmp_path)
    reader = open_dataset(tmp_path, "revos", split="valid")
    assert reader.meta_path.name == "meta_expressions_valid_.json"
    sample = reader[REVOS_VID]
    assert sample.frame_paths[0] == tmp_path / "JPEGImages" / "UVO" / "all" / "-xYz" / "00000.jpg"
    assert (sample.height, sample.width) == (H, W)
    assert [sample.expressions[k].type_id for k in "012"] == [REFERRING, REASONING, NO_TARGET]
    assert sample.expressions["2"].obj_ids == ()
    for t in range(T):
        assert not sample.expression_mask("2", t).any()
        a = np.zeros((H, W), bool) if OBJ_A[t] is None else OBJ_A[t]
        b = np.zeros((H, W), bool) if OBJ_B[t] is None else OBJ_B[t]
        assert np.array_equal(sample.expression_mask("1", t), a | b)
        assert np.array_equal(sample.foreground_loader(t), a | b)
    assert sample.load_frame(0).shape == (H, W, 3)


def test_revos_missing_split_names_candidates(tmp_path):
    build_revos(tmp_path)
    with pytest.raises(data_io.MissingFileError, match="meta_expressions_train_.json"):
        open_dataset(tmp_path, "revos", split="train")


# -------------------------------------------------------------- Ref-YouTube-VOS


def _check_ytvos_sample(sample):
    assert (sample.height, sample.width, sample.num_frames) == (H, W, 3)
    assert sample.expressions["0"].obj_ids == ("1",) and sample.expressions["1"].obj_ids == ("2",)
    assert sorted(sample.mask_loaders) == ["1", "2", "3"]  # "3" only in meta.json
    for t, name in enumerate(YT_FRAMES):
        ids = YT_IDS.get(name, np.zeros((H, W), np.uint8))  # no PNG -> empty masks
        for obj in ("1", "2", "3"):
            assert np.array_equal(sample.object_mask(obj, t), ids == int(obj))
    assert not sample.expression_mask("0", 2).any()


def test_refytvos_reads_back_exactly(tmp_path):
    build_refytvos(tmp_path)
    reader = open_dataset(tmp_path, "refytvos", split="train")
    assert reader.meta_path == tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    sample = reader["yt1"]
    assert sample.dataset == "refytvos" and sample.extra["categories"] == {"1": "person", "2": "horse", "3": "dog"}
    _check_ytvos_sample(sample)
    assert all(e.type_id == REFERRING for e in sample.expressions.values())


def test_refytvos_direct_folder(tmp_path):
    build_refytvos(tmp_path)
    direct = tmp_path / "direct"
    direct.mkdir()
    (direct / "meta_expressions.json").write_text((tmp_path / "meta_expressions/train/meta_expressions.json").read_text())
    (direct / "JPEGImages").symlink_to(tmp_path / "train" / "JPEGImages")
    (direct / "Annotations").symlink_to(tmp_path / "train" / "Annotations")
    sample = open_dataset(direct, "refytvos", split="train")["yt1"]
    assert sample.extra["categories"] == {}  # no meta.json here
    assert np.array_equal(sample.object_mask("2", 0), YT_IDS["00000"] == 2)


def test_refytvos_split_without_annotations(tmp_path):
    build_refytvos(tmp_path)
    _write_json(tmp_path / "meta_expressions" / "valid" / "meta_expressions.json", {"videos": {"v9": {
        "expressions": {"0": {"exp": "a cat"}}, "frames": ["00000"]}}})
    _frames(tmp_path / "valid" / "JPEGImages" / "v9", ["00000"])
    sample = open_dataset(tmp_path, "refytvos", split="valid")["v9"]
    assert not sample.has_masks and sample.expressions["0"].obj_ids == ()


def test_refytvos_bad_object_id_names_meta(tmp_path):
    build_refytvos(tmp_path)
    path = tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    meta["videos"]["yt1"]["expressions"]["0"]["obj_id"] = "person"
    path.write_text(json.dumps(meta))
    with pytest.raises(data_io.CorruptFileError, match="meta_expressions.json"):
        open_dataset(tmp_path, "refytvos", split="train")["yt1"]


# -------------------------------------------------------------------- Ref-DAVIS17


@pytest.mark.parametrize("native", [False, True])
def test_davis_reads_back_exactly(tmp_path, native):
    build_refytvos(tmp_path, split="valid", native_davis=native)
    reader = open_dataset(tmp_path, "davis")  # default split: valid
    sample = reader["yt1"]
    assert sample.dataset == "davis" and sample.split == "valid"
    _check_ytvos_sample(sample)


# ------------------------------------------------------------------ laziness


def test_opening_and_indexing_decode_nothing(tmp_path, monkeypatch):
    build_mevis(tmp_path / "mevis")
    build_revos(tmp_path / "revos")
    build_refytvos(tmp_path / "yt")
    calls = {"rle": 0, "rgb": 0, "png": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(rle, "decode", counting("rle", rle.decode))
    monkeypatch.setattr(data_io, "read_rgb", counting("rgb", data_io.read_rgb))
    monkeypatch.setattr(data_io, "read_palette_png", counting("png", data_io.read_palette_png))

    mevis = open_dataset(tmp_path / "mevis", "mevis", split="train")
    revos = open_dataset(tmp_path / "revos", "revos", split="valid")
    yt = open_dataset(tmp_path / "yt", "refytvos", split="train")
    samples = [mevis["vidA"], revos[REVOS_VID], yt["yt1"], *list(mevis), *list(yt)]
    assert calls == {"rle": 0, "rgb": 0, "png": 0}
    assert not mevis.mask_dict.loaded and not revos.mask_dict.loaded and not revos.foreground.loaded

    samples[0].object_mask("11", 1)
    assert calls["rle"] == 1 and mevis.mask_dict.loaded
    samples[1].foreground_loader(0)
    assert calls["rle"] == 2 and revos.foreground.loaded and revos.mask_dict.loaded is False
    samples[2].object_mask("1", 0)
    samples[2].object_mask("2", 0)  # same frame: one PNG read, shared
    assert calls["png"] == 1
    samples[0].load_frame(0)
    assert calls["rgb"] == 1


def test_samples_pickle_without_mask_dict(tmp_path):
    build_mevis(tmp_path)
    reader = open_dataset(tmp_path, "mevis", split="train")
    sample = reader["vidA"]
    expected = sample.expression_masks("1")  # loads mask_dict.json in this process
    assert reader.mask_dict.loaded
    payload = pickle.dumps(sample)
    assert b"counts" not in payload  # the parsed mask dict is not shipped
    assert np.array_equal(pickle.loads(payload).expression_masks("1"), expected)


# ---------------------------------------------------------------- bad input


def test_corrupt_frame_names_the_path(tmp_path):
    build_revos(tmp_path)
    bad = tmp_path / "JPEGImages" / REVOS_VID / "00001.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    sample = open_dataset(tmp_path, "revos", split="valid")[REVOS_VID]
    with pytest.raises(data_io.CorruptFileError, match="00001.jpg"):
        sample.load_frame(1)


def test_missing_first_frame_names_the_path(tmp_path):
    build_mevis(tmp_path)
    (tmp_path / "train" / "JPEGImages" / "vidA" / "00000.jpg").unlink()
    with pytest.raises(data_io.MissingFileError, match="00000.jpg"):
        open_dataset(tmp_path, "mevis", split="train")["vidA"]


def test_broken_rle_names_mask_dict_and_anno_id(tmp_path):
    build_mevis(tmp_path)
    path = tmp_path / "train" / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["12"][1] = {"size": [H, W], "counts": "92"}
    path.write_text(json.dumps(masks))
    sample = open_dataset(tmp_path, "mevis", split="train")["vidA"]
    assert sample.object_mask("11", 1).any()  # other entries still fine
    with pytest.raises(data_io.CorruptFileError, match=r"mask_dict.json.*anno_id 12 frame 1"):
        sample.object_mask("12", 1)


def test_rle_of_wrong_size_and_missing_anno_id(tmp_path):
    build_mevis(tmp_path)
    path = tmp_path / "train" / "mask_dict.json"
    masks = json.loads(path.read_text())
    masks["11"][0] = rle.encode(np.ones((H + 1, W), bool))
    del masks["12"]
    path.write_text(json.dumps(masks))
    sample = open_dataset(tmp_path, "mevis", split="train")["vidA"]
    with pytest.raises(data_io.CorruptFileError, match="does not match"):
        sample.object_mask("11", 0)
    with pytest.raises(data_io.CorruptFileError, match="no entry for key '12'"):
        sample.object_mask("12", 0)


def test_corrupt_annotation_png_names_the_path(tmp_path):
    build_refytvos(tmp_path)
    (tmp_path / "train" / "Annotations" / "yt1" / "00005.png").write_bytes(b"not a png")
    sample = open_dataset(tmp_path, "refytvos", split="train")["yt1"]
    assert np.array_equal(sample.object_mask("1", 0), YT_IDS["00000"] == 1)
    with pytest.raises(data_io.CorruptFileError, match="00005.png"):
        sample.object_mask("1", 1)


def test_bad_metadata_errors(tmp_path):
    build_mevis(tmp_path)
    meta = tmp_path / "train" / "meta_expressions.json"
    meta.write_text("{broken")
    with pytest.raises(data_io.CorruptFileError, match="meta_expressions.json"):
        open_dataset(tmp_path, "mevis", split="train")
    meta.write_text(json.dumps({"videos": {"v": {"frames": [], "expressions": {}}}}))
    with pytest.raises(data_io.CorruptFileError, match="'frames'"):
        open_dataset(tmp_path, "mevis", split="train")["v"]
    with pytest.raises(data_io.MissingFileError, match="nowhere"):
        open_dataset(tmp_path / "nowhere", "mevis")
    with pytest.raises(ValueError, match="unknown data set format"):
        open_dataset(tmp_path, "kinetics")
    with pytest.raises(KeyError, match="nope"):
        open_dataset(tmp_path / "train", "mevis", split="x").__getitem__("nope")


def test_every_format_is_registered():
    assert sorted(READERS) == ["davis", "mevis", "refytvos", "revos", "synthetic"]
