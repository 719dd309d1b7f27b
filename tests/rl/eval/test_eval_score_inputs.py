"""``launch.evaluate score`` input checks: what a prediction PNG may hold, and an empty prediction folder.

A prediction PNG must be a binary mask (grey 0/255 or 0/1, 1-bit, black + one colour)
or a palette PNG with at most one non-zero index; anything else (masks whose
background is 1..3, probability maps) is an error naming the file, unless
``--threshold T`` binarises soft maps (value >= T x full scale), which is counted
and logged. An empty prediction folder, or one holding no PNG of the scored
videos, is an error (exit 2, no summary). Expected scores come from the fixture's
closed forms (perfect masks = 100; all-empty masks = 100 * 0.5 / 3, see
``test_mevis_empty_predictions``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from launch.evaluate import main as evaluate_main
from tests.rl.eval.test_eval_score_cli import mevis, write_predictions  # noqa: F401 - fixture

EMPTY_JF = 100 * 0.5 / 3   # only vidB frame "00005" has an empty GT, so only there an empty mask is right


def _write(pred: Path, fixture: dict, to_image) -> int:
    """One PNG per GT frame, ``to_image(bool mask, frame number) -> PIL image``; returns how many."""
    n = 0
    for (video, exp_id), masks in fixture["gts"].items():
        folder = pred / video / exp_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, mask in zip(fixture["videos"][video], masks):
            to_image(mask, n).save(folder / f"{name}.png")
            n += 1
    return n


def _score(tmp_path: Path, root: Path, pred: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / f"out_{pred.name}_{len(extra)}"
    code = evaluate_main(["score", "--dataset-root", str(root), "--format", "mevis", "--pred", str(pred),
                          "--out", str(out), "--no-progress", *extra])
    return code, out


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _background_1_to_3(mask: np.ndarray, n: int) -> Image.Image:
    values = (1 + (np.arange(mask.size).reshape(mask.shape) + n) % 3).astype(np.uint8)
    values[mask] = 255
    return Image.fromarray(values)


def _soft_230_25(mask: np.ndarray, n: int) -> Image.Image:
    return Image.fromarray(np.where(mask, 230, 25).astype(np.uint8))


@pytest.mark.parametrize("make", [_background_1_to_3, _soft_230_25], ids=["background_1_to_3", "soft_230_25"])
def test_non_binary_predictions_are_an_error_naming_the_file(tmp_path, mevis, capsys, make):  # noqa: F811
    root, fixture = mevis
    pred = tmp_path / "pred"
    _write(pred, fixture, make)
    code, out = _score(tmp_path, root, pred)
    err = capsys.readouterr().err
    assert code == 2
    assert str(pred / "vidA" / "0" / "00000.png") in err and "--threshold" in err
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("make", [_background_1_to_3, _soft_230_25], ids=["background_1_to_3", "soft_230_25"])
def test_a_threshold_binarises_soft_maps_and_says_so(tmp_path, mevis, caplog, make):  # noqa: F811
    root, fixture = mevis
    pred = tmp_path / "pred"
    frames = _write(pred, fixture, make)
    with caplog.at_level(logging.WARNING):
        code, out = _score(tmp_path, root, pred, "--threshold", "0.5")
    assert code == 0
    summary = _summary(out)
    assert summary["J&F"] == 100.0
    assert summary["prediction_files"]["thresholded_frames"] == frames == 8
    assert summary["prediction_files"]["threshold"] == 0.5
    assert any("threshold" in r.getMessage() and "8" in r.getMessage() for r in caplog.records)
    if make is _soft_230_25:  # above the foreground value (0.95 x 255 > 230) every pixel is background
        code, out = _score(tmp_path, root, pred, "--threshold", "0.95")
        assert code == 0 and _summary(out)["J&F"] == pytest.approx(EMPTY_JF)


def _palette(index: int):
    def make(mask: np.ndarray, n: int) -> Image.Image:
        img = Image.fromarray(mask.astype(np.uint8) * index, mode="P")
        img.putpalette([0, 0, 0] + [128, 0, 0] * 255)
        return img
    return make


BINARY = {
    "grey_0_255": lambda m, n: Image.fromarray(m.astype(np.uint8) * 255),
    "grey_0_1": lambda m, n: Image.fromarray(m.astype(np.uint8)),
    "one_bit": lambda m, n: Image.fromarray(m),
    "rgb_white": lambda m, n: Image.fromarray(np.repeat(m[..., None].astype(np.uint8) * 255, 3, axis=2)),
    "rgb_davis_red": lambda m, n: Image.fromarray((m[..., None] * np.array([128, 0, 0])).astype(np.uint8)),
    "palette_index_1": _palette(1),
    "palette_index_5": _palette(5),
    "grey_16bit_0_65535": lambda m, n: Image.fromarray(m.astype(np.uint16) * 65535),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_and_single_index_palette_predictions_score_100(tmp_path, mevis, name):  # noqa: F811
    root, fixture = mevis
    pred = tmp_path / "pred"
    _write(pred, fixture, BINARY[name])
    code, out = _score(tmp_path, root, pred)
    assert code == 0
    summary = _summary(out)
    assert summary["J&F"] == 100.0 and summary["prediction_files"]["thresholded_frames"] == 0


def test_two_objects_in_one_prediction_are_an_error(tmp_path, mevis, capsys):  # noqa: F811
    root, fixture = mevis
    for kind in ("palette", "rgb"):
        pred = tmp_path / f"pred_{kind}"

        def make(mask: np.ndarray, n: int) -> Image.Image:
            ids = mask.astype(np.uint8)
            ids[0, 0] = 2                                   # a second object index / colour
            if kind == "rgb":
                return Image.fromarray(_palette_rgb(ids))
            img = Image.fromarray(ids, mode="P")
            img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
            return img

        _write(pred, fixture, make)
        code, _ = _score(tmp_path, root, pred, "--threshold", "0.5")   # a threshold does not apply to colours
        assert code == 2
        assert str(pred / "vidA" / "0" / "00000.png") in capsys.readouterr().err


def _palette_rgb(ids: np.ndarray) -> np.ndarray:
    colours = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], dtype=np.uint8)
    return colours[ids]


def test_an_empty_or_unrelated_prediction_folder_is_an_error(tmp_path, mevis, capsys):  # noqa: F811
    root, fixture = mevis
    empty = tmp_path / "pred_empty"
    empty.mkdir()
    code, out = _score(tmp_path, root, empty)
    assert code == 2 and "no prediction" in capsys.readouterr().err
    assert not (out / "summary.json").exists()
    unrelated = tmp_path / "pred_unrelated"
    (unrelated / "other_video" / "0").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(unrelated / "other_video" / "0" / "00000.png")
    code, out = _score(tmp_path, root, unrelated)
    assert code == 2 and "no prediction" in capsys.readouterr().err
    assert not (out / "summary.json").exists()


def test_summary_counts_the_expressions_that_had_predictions(tmp_path, mevis):  # noqa: F811
    root, fixture = mevis
    pred = tmp_path / "pred_partial"
    write_predictions(pred, fixture, {k: v for k, v in fixture["gts"].items() if k != ("vidA", "1")})
    code, out = _score(tmp_path, root, pred)
    assert code == 0
    files = _summary(out)["prediction_files"]
    assert files["expressions_with_predictions"] == 2 and files["expressions_without_predictions"] == 1
