"""data.io and data.rle: file round trips, hand-computed encodings, clear errors on bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from data import io as data_io
from data import rle


# ------------------------------------------------------------------------- palette


def test_davis_palette_known_entries():
    palette = data_io.davis_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    # PASCAL-VOC / DAVIS colours, by hand from the bit rule.
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[3].tolist() == [128, 128, 0]
    assert palette[4].tolist() == [0, 0, 128]
    assert palette[8].tolist() == [64, 0, 0]
    assert palette[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in palette.tolist()}) == 256


def test_palette_png_round_trip_and_format(tmp_path):
    ids = np.array([[0, 1, 1, 2], [0, 0, 3, 255]], dtype=np.uint8)
    path = tmp_path / "a" / "00000.png"
    data_io.write_palette_png(path, ids)
    with Image.open(path) as image:  # independent check with PIL
        assert image.mode == "P"
        assert image.getpalette()[3:6] == [128, 0, 0]
        assert np.array_equal(np.asarray(image), ids)
    assert np.array_equal(data_io.read_palette_png(path), ids)


def test_read_palette_png_accepts_grey_and_rgb(tmp_path):
    ids = np.array([[0, 1], [2, 4]], dtype=np.uint8)
    Image.fromarray(ids, mode="L").save(tmp_path / "grey.png")
    assert np.array_equal(data_io.read_palette_png(tmp_path / "grey.png"), ids)
    rgb = data_io.davis_palette()[ids]
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    assert np.array_equal(data_io.read_palette_png(tmp_path / "rgb.png"), ids)
    rgb[0, 0] = (1, 2, 3)  # not a palette colour
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "bad.png")
    with pytest.raises(data_io.CorruptFileError, match="bad.png"):
        data_io.read_palette_png(tmp_path / "bad.png")


def test_write_palette_png_rejects_bad_ids(tmp_path):
    with pytest.raises(ValueError):
        data_io.write_palette_png(tmp_path / "x.png", np.full((2, 2), 300))
    with pytest.raises(ValueError):
        data_io.write_palette_png(tmp_path / "x.png", np.zeros((2, 2, 3)))


# -------------------------------------------------------------------- images


def test_jpeg_round_trip_is_close(tmp_path):
    rng = np.random.default_rng(0)
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, :16] = (230, 25, 25)
    image[:, 16:] = (30, 60, 240)
    image[8:16, 8:24] = rng.integers(0, 256, (8, 16, 3))
    data_io.write_jpeg(tmp_path / "f.jpg", image, quality=95)
    back = data_io.read_rgb(tmp_path / "f.jpg")
    assert back.shape == (24, 32, 3) and back.dtype == np.uint8
    flat = np.ones((24, 32), bool)
    flat[7:17, 7:25] = False  # away from the noisy patch
    assert np.abs(back[flat].astype(int) - image[flat].astype(int)).mean() < 4
    assert data_io.image_size(tmp_path / "f.jpg") == (24, 32)


def test_png_round_trip(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data_io.write_png(tmp_path / "rgb.png", rgb)
    assert np.array_equal(data_io.read_rgb(tmp_path / "rgb.png"), rgb)
    mask = np.array([[True, False], [False, True]])
    data_io.write_png(tmp_path / "m.png", mask)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")), mask.astype(np.uint8) * 255)


def test_missing_image_names_the_path(tmp_path):
    path = tmp_path / "JPEGImages" / "vid" / "00003.jpg"
    with pytest.raises(data_io.MissingFileError, match="00003.jpg") as info:
        data_io.read_rgb(path)
    assert isinstance(info.value, FileNotFoundError) and info.value.path == path
    with pytest.raises(FileNotFoundError, match="00007.png"):
        data_io.read_palette_png(tmp_path / "00007.png")


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_jpeg_names_the_path(tmp_path, kind):
    path = tmp_path / "bad.jpg"
    if kind == "garbage":
        path.write_bytes(b"this is not a jpeg at all")
    else:
        data_io.write_jpeg(path, np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8))
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(data_io.CorruptFileError, match="bad.jpg") as info:
        data_io.read_rgb(path)
    assert isinstance(info.value, ValueError) and info.value.path == path


def test_corrupt_png_names_the_path(tmp_path):
    path = tmp_path / "00000.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(data_io.CorruptFileError, match="00000.png"):
        data_io.read_palette_png(path)


def test_json_errors_and_atomic_write(tmp_path):
    data_io.write_json_atomic(tmp_path / "d" / "x.json", {"a": [1, None]})
    assert json.loads((tmp_path / "d" / "x.json").read_text()) == {"a": [1, None]}
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["x.json"]  # no temp file left
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(data_io.CorruptFileError, match="bad.json"):
        data_io.read_json(tmp_path / "bad.json")
    with pytest.raises(data_io.MissingFileError, match="none.json"):
        data_io.read_json(tmp_path / "none.json")


# ---------------------------------------------------------------------------- RLE


def test_rle_matches_hand_computed_runs():
    # Column-major pixel order: col0 = 0,0; col1 = 1,1; col2 = 0,1 -> runs 2 zeros, 2 ones, 1 zero, 1 one.
    mask = np.array([[0, 1, 0], [0, 1, 1]], dtype=bool)
    assert np.array_equal(rle.decode({"size": [2, 3], "counts": [2, 2, 1, 1]}), mask)
    encoded = rle.encode(mask)
    assert encoded["size"] == [2, 3] and isinstance(encoded["counts"], str)
    json.dumps(encoded)  # JSON-able
    assert np.array_equal(rle.decode(encoded), mask)
    assert rle.area(encoded) == 3
    # Compressed form of [2, 2, 1, 1]: a small run is one char chr(48 + value); from the 4th run on
    # the value is the difference to the run two before: "2", "2", "1", then 1 - 2 = -1, whose
    # 5-bit two's complement 0x1F (sign bit 0x10 set, no continuation) is chr(48 + 31) = "O".
    assert encoded["counts"] == "221O"


def test_rle_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.random()
        encoded = rle.encode(mask)
        assert np.array_equal(rle.decode(encoded, (h, w)), mask)
        assert rle.area(encoded) == int(mask.sum())


def test_rle_absent_objects():
    assert rle.encode_or_none(np.zeros((3, 4), bool)) is None
    assert rle.encode_or_none(np.eye(3, dtype=bool)) is not None
    assert not rle.decode(None, (3, 4)).any() and rle.decode(None, (3, 4)).shape == (3, 4)
    assert rle.area(None) == 0
    with pytest.raises(rle.RLEError):
        rle.decode(None)


def test_rle_multi_part_union():
    a = np.zeros((4, 4), bool)
    a[0, 0] = True
    b = np.zeros((4, 4), bool)
    b[3, 3] = True
    assert np.array_equal(rle.decode([rle.encode(a), rle.encode(b)]), a | b)


@pytest.mark.parametrize("bad", [
    {"size": [4, 5], "counts": ""},            # covers 0 pixels (pycocotools would return garbage)
    {"size": [4, 5], "counts": "92"},          # covers 11 of 20 pixels
    {"size": [4, 5], "counts": "zz"},          # invalid characters
    {"size": [4, 5], "counts": [3, 100]},      # too many pixels
    {"size": [4, 5]},                          # no counts
    {"size": [4], "counts": "5"},              # bad size
    "not a dict",
    {"size": [4, 5], "counts": 7},
])
def test_broken_rle_raises(bad):
    with pytest.raises(rle.RLEError):
        rle.decode(bad)


def test_rle_size_mismatch_raises():
    with pytest.raises(rle.RLEError, match="does not match"):
        rle.decode(rle.encode(np.ones((2, 3), bool)), (3, 2))
