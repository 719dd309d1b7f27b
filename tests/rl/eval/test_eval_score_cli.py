"""``python -m launch.evaluate score`` end to end on tiny MeViS- and ReVOS-layout fixtures.

The fixtures are written here with pycocotools RLE (``mask_dict.json``,
``mask_dict_foreground.json``) and read back through ``data.readers``.
Expected numbers come from closed forms (rectangles shifted by ``s`` px:
``J = (w - s) / (w + s)``, ``R = 1 - FP / |foreground|``) and from the slow
reference F of ``test_eval_metrics_reference``, never from ``rl.eval``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from launch.evaluate import main as evaluate_main
from tests.rl.eval.test_eval_metrics_reference import slow_boundary_f

H, W = 24, 32          # diagonal 40 -> bound_pix = ceil(0.32) = 1
SHIFT = 3
REPO = Path(__file__).resolve().parents[3]


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Inclusive rectangle rows y0..y1, cols x0..x1."""
    mask = np.zeros((H, W), bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def _rle(mask: np.ndarray | None):
    if mask is None:
        return None
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _write_frames(root: Path, video: str, frames: list[str]) -> None:
    folder = root / "JPEGImages" / video
    folder.mkdir(parents=True, exist_ok=True)
    for name in frames:
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(folder / f"{name}.jpg")


# Objects: anno id -> per-frame mask or None (absent). Expressions: (video, exp id, type id, anno ids).
A = _rect(4, 9, 3, 10)        # 6 x 8
B = _rect(14, 19, 18, 27)     # 6 x 10
C = _rect(2, 7, 20, 25)       # 6 x 6


def _dataset(kind: str):
    if kind == "mevis":
        videos = {"vidA": ["00000", "00001", "00002"], "vidB": ["00000", "00005"]}
        objects = {"0": [A, A, A], "1": [B, B, None], "2": [C, None]}
        expressions = [("vidA", "0", 0, ["0"]), ("vidA", "1", 0, ["0", "1"]), ("vidB", "0", 0, ["2"])]
    else:
        videos = {"UVO/all/v1": ["00000", "00001", "00002"], "vidB": ["00000", "00005"]}
        objects = {"10": [A, A, A], "11": [B, B, None], "12": [C, None]}
        expressions = [("UVO/all/v1", "0", 0, ["10"]), ("UVO/all/v1", "1", 1, ["10", "11"]),
                       ("UVO/all/v1", "2", 2, []), ("vidB", "0", 0, ["12"])]
    return videos, objects, expressions


def write_dataset(root: Path, kind: str) -> dict:
    """Write the fixture; return {(video, exp): T x H x W GT union}, plus foregrounds for ReVOS."""
    videos, objects, expressions = _dataset(kind)
    meta: dict = {"videos": {}}
    for video, frames in videos.items():
        entry = {"vid_id": video, "frames": frames, "expressions": {}}
        if kind == "revos":
            entry.update(height=H, width=W)
        meta["videos"][video] = entry
        _write_frames(root, video, frames)
    gts, foregrounds = {}, {}
    for video, exp_id, type_id, annos in expressions:
        exp = {"exp": f"expression {exp_id} of {video}", "obj_id": [int(a) for a in annos],
               "anno_id": [int(a) for a in annos]}
        if kind == "revos":
            exp["type_id"] = type_id
        meta["videos"][video]["expressions"][exp_id] = exp
        union = np.zeros((len(videos[video]), H, W), bool)
        for a in annos:
            for t, m in enumerate(objects[a]):
                if m is not None:
                    union[t] |= m
        gts[(video, exp_id)] = union
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    (root / "mask_dict.json").write_text(json.dumps({a: [_rle(m) for m in ms] for a, ms in objects.items()}))
    if kind == "revos":
        fg_json = {}
        for video, frames in videos.items():
            annos = {a for v, _, _, aa in expressions if v == video for a in aa}
            fg = np.zeros((len(frames), H, W), bool)
            for a in annos:
                for t, m in enumerate(objects[a]):
                    if m is not None:
                        fg[t] |= m
            foregrounds[video] = fg
            fg_json[video] = {"masks_rle": [_rle(f) for f in fg], "foreground_ratio": [float(f.mean()) for f in fg]}
        (root / "mask_dict_foreground.json").write_text(json.dumps(fg_json))
    return {"gts": gts, "foregrounds": foregrounds, "videos": videos, "expressions": expressions}


def write_predictions(pred_dir: Path, fixture: dict, preds: dict, palette: bool = False) -> None:
    for (video, exp_id), masks in preds.items():
        folder = pred_dir / video / exp_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, mask in zip(fixture["videos"][video], masks):
            if palette:
                img = Image.fromarray(mask.astype(np.uint8), mode="P")
                img.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
            else:
                img = Image.fromarray(mask.astype(np.uint8) * 255)
            img.save(folder / f"{name}.png")


# ------------------------------------------------------------- expectations


def expected_rows(fixture: dict, preds: dict) -> dict:
    """(video, exp) -> (J, F, R) fractions, from the independent per-frame definitions."""
    out = {}
    for (video, exp_id), gt in fixture["gts"].items():
        pred = preds[(video, exp_id)]
        js, fs, rs = [], [], []
        for t in range(gt.shape[0]):
            union = np.logical_or(gt[t], pred[t]).sum()
            js.append(1.0 if union == 0 else np.logical_and(gt[t], pred[t]).sum() / union)
            fs.append(slow_boundary_f(gt[t], pred[t]))
            if fixture["foregrounds"]:
                fg = fixture["foregrounds"][video][t].sum()
                fp = np.logical_and(pred[t], ~gt[t]).sum()
                rs.append(max(1 - fp / fg, 0.0) if fg else float(fp == 0))
        out[(video, exp_id)] = (np.mean(js), np.mean(fs), np.mean(rs) if rs else None)
    return out


def shifted(fixture: dict) -> dict:
    return {key: np.roll(gt, SHIFT, axis=2) for key, gt in fixture["gts"].items()}


def empty(fixture: dict) -> dict:
    return {key: np.zeros_like(gt) for key, gt in fixture["gts"].items()}


def run_score(tmp_path: Path, root: Path, pred: Path, fmt: str, *extra: str) -> tuple[dict, list[dict]]:
    out = tmp_path / f"out_{pred.name}"
    code = evaluate_main(["score", "--dataset-root", str(root), "--format", fmt, "--pred", str(pred),
                          "--out", str(out), "--no-progress", *extra])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "per_expression.csv")))
    return summary, rows


@pytest.fixture()
def mevis(tmp_path):
    root = tmp_path / "mevis"
    return root, write_dataset(root, "mevis")


@pytest.fixture()
def revos(tmp_path):
    root = tmp_path / "revos"
    return root, write_dataset(root, "revos")


# ------------------------------------------------------------------- MeViS


def test_mevis_ground_truth_predictions_score_100(tmp_path, mevis):
    root, fixture = mevis
    pred = tmp_path / "pred_gt"
    write_predictions(pred, fixture, fixture["gts"])
    summary, rows = run_score(tmp_path, root, pred, "mevis")
    assert summary["J"] == summary["F"] == summary["J&F"] == 100.0
    assert summary["num_expressions"] == 3 and summary["num_videos"] == 2
    assert summary["prediction_files"]["missing_frames"] == 0
    assert [(r["video"], r["exp_id"]) for r in rows] == [("vidA", "0"), ("vidA", "1"), ("vidB", "0")]
    assert [r["num_frames"] for r in rows] == ["3", "3", "2"]


def test_mevis_empty_predictions(tmp_path, mevis):
    root, fixture = mevis
    pred = tmp_path / "pred_empty"
    write_predictions(pred, fixture, empty(fixture))
    summary, _ = run_score(tmp_path, root, pred, "mevis")
    # Only vidB frame "00005" has an empty GT: that expression scores 1/2, the others 0.
    assert summary["J"] == pytest.approx(100 * (0 + 0 + 0.5) / 3)
    assert summary["F"] == pytest.approx(100 * (0 + 0 + 0.5) / 3)
    assert summary["J&F"] == pytest.approx(100 * 0.5 / 3)


def test_mevis_shifted_predictions(tmp_path, mevis):
    root, fixture = mevis
    preds = shifted(fixture)
    pred = tmp_path / "pred_shift"
    write_predictions(pred, fixture, preds)
    summary, rows = run_score(tmp_path, root, pred, "mevis")
    expected = expected_rows(fixture, preds)
    # Closed form for the single 6 x 8 rectangle shifted by 3: J = (8 - 3) / (8 + 3) per frame.
    assert expected[("vidA", "0")][0] == pytest.approx(5 / 11)
    for row in rows:
        j, f, _ = expected[(row["video"], row["exp_id"])]
        assert float(row["J"]) == pytest.approx(100 * j, abs=1e-4)
        assert float(row["F"]) == pytest.approx(100 * f, abs=1e-4)
    j_mean = np.mean([v[0] for v in expected.values()])
    f_mean = np.mean([v[1] for v in expected.values()])
    assert summary["J"] == pytest.approx(100 * j_mean)
    assert summary["F"] == pytest.approx(100 * f_mean)
    assert summary["J&F"] == pytest.approx(100 * (j_mean + f_mean) / 2)
    assert 0 < summary["F"] < 100   # a 3 px shift exceeds the 1 px tolerance on part of the boundary


def test_mevis_missing_unreadable_and_resized_predictions_are_counted(tmp_path, mevis, caplog):
    root, fixture = mevis
    preds = {k: v.copy() for k, v in fixture["gts"].items()}
    pred = tmp_path / "pred_mixed"
    write_predictions(pred, fixture, preds)
    (pred / "vidA" / "0" / "00001.png").unlink()                          # missing frame -> empty
    (pred / "vidA" / "1" / "00000.png").write_bytes(b"not a png")        # unreadable -> empty
    for name, mask in zip(fixture["videos"]["vidB"], preds[("vidB", "0")]):  # 2x size -> resized back
        big = np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1).astype(np.uint8) * 255
        Image.fromarray(big).save(pred / "vidB" / "0" / f"{name}.png")
    summary, rows = run_score(tmp_path, root, pred, "mevis")
    by_key = {(r["video"], r["exp_id"]): r for r in rows}
    assert by_key[("vidA", "0")]["missing_frames"] == "1"
    assert by_key[("vidA", "1")]["unreadable_frames"] == "1"
    assert by_key[("vidB", "0")]["resized_frames"] == "2"
    files = summary["prediction_files"]
    assert (files["missing_frames"], files["unreadable_frames"], files["resized_frames"]) == (1, 1, 2)
    assert files["total_frames"] == 8
    # Missing / unreadable frames score as empty masks (J = F = 0 there); resized ones are exact.
    assert float(by_key[("vidA", "0")]["J"]) == pytest.approx(100 * 2 / 3)
    assert float(by_key[("vidA", "1")]["F"]) == pytest.approx(100 * 2 / 3)
    assert float(by_key[("vidB", "0")]["J&F"]) == pytest.approx(100.0)
    assert any("missing" in r.message for r in caplog.records)
    assert any("resized" in r.message for r in caplog.records)


def test_mevis_missing_expression_folder_and_extra_video(tmp_path, mevis):
    root, fixture = mevis
    pred = tmp_path / "pred_partial"
    write_predictions(pred, fixture, {k: v for k, v in fixture["gts"].items() if k != ("vidA", "1")})
    (pred / "not_a_video").mkdir()
    summary, rows = run_score(tmp_path, root, pred, "mevis")
    files = summary["prediction_files"]
    assert files["missing_expression_dirs"] == 1
    assert files["missing_frames"] == 3
    assert files["unscored_prediction_videos"] == 1
    assert float(rows[1]["J"]) == 0.0
    assert summary["J"] == pytest.approx(100 * 2 / 3)


def test_workers_give_the_same_result(tmp_path, mevis):
    root, fixture = mevis
    pred = tmp_path / "pred_workers"
    write_predictions(pred, fixture, shifted(fixture))
    one, rows_one = run_score(tmp_path, root, pred, "mevis")
    out2 = tmp_path / "out_w2"
    assert evaluate_main(["score", "--dataset-root", str(root), "--format", "mevis", "--pred", str(pred),
                          "--out", str(out2), "--no-progress", "--workers", "2"]) == 0
    two = json.loads((out2 / "summary.json").read_text())
    assert two["J&F"] == one["J&F"] and two["J"] == one["J"] and two["F"] == one["F"]
    assert list(csv.DictReader(open(out2 / "per_expression.csv"))) == rows_one


def test_cli_subprocess_and_errors(tmp_path, mevis):
    root, fixture = mevis
    pred = tmp_path / "pred_cli"
    write_predictions(pred, fixture, fixture["gts"])
    out = tmp_path / "out_cli"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "launch.evaluate", "score", "--dataset-root", str(root), "--format", "mevis",
         "--pred", str(pred), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["J&F"] == 100.0
    assert json.loads((out / "summary.json").read_text())["J&F"] == 100.0

    missing = subprocess.run(
        [sys.executable, "-m", "launch.evaluate", "score", "--dataset-root", str(root), "--format", "mevis",
         "--pred", str(tmp_path / "nope"), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 2 and "prediction folder" in missing.stderr

    no_ckpt = subprocess.run([sys.executable, "-m", "launch.evaluate", "run", f"checkpoint={tmp_path / 'no_ckpt'}",
                              f"out={tmp_path / 'run_out'}"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert no_ckpt.returncode == 2 and "no_ckpt" in no_ckpt.stderr


def test_split_without_ground_truth_is_a_clear_error(tmp_path, mevis, capsys):
    root, fixture = mevis
    (root / "mask_dict.json").unlink()     # like MeViS "valid": no released masks
    pred = tmp_path / "pred_nogt"
    write_predictions(pred, fixture, fixture["gts"])
    code = evaluate_main(["score", "--dataset-root", str(root), "--format", "mevis", "--pred", str(pred),
                          "--out", str(tmp_path / "out_nogt"), "--no-progress"])
    assert code == 2
    assert "no ground-truth masks" in capsys.readouterr().err


# -------------------------------------------------------------------- ReVOS


def _revos_expected_summary(fixture: dict, preds: dict) -> dict:
    rows = expected_rows(fixture, preds)
    types = {(v, e): t for v, e, t, _ in fixture["expressions"]}
    split = {}
    for name, type_id in (("referring", 0), ("reasoning", 1)):
        vals = [rows[k] for k in rows if types[k] == type_id]
        j, f, r = (100 * np.mean([v[i] for v in vals]) for i in range(3))
        split[name] = {"J": j, "F": f, "J&F": (j + f) / 2, "R": r}
    overall = {k: (split["referring"][k] + split["reasoning"][k]) / 2 for k in ("J", "F", "J&F", "R")}
    return {**split, "overall": overall}


def _assert_revos(summary: dict, expected: dict) -> None:
    for block in ("referring", "reasoning", "overall"):
        for key in ("J", "F", "J&F", "R"):
            assert summary[block][key] == pytest.approx(expected[block][key], abs=1e-9), (block, key)
    for key in ("J", "F", "J&F", "R"):
        assert summary[key] == pytest.approx(expected["overall"][key], abs=1e-9)


def test_revos_ground_truth_predictions(tmp_path, revos):
    root, fixture = revos
    pred = tmp_path / "pred_gt"
    write_predictions(pred, fixture, fixture["gts"], palette=True)   # palette PNGs, index 1 = object
    summary, rows = run_score(tmp_path, root, pred, "revos")
    for block in ("referring", "reasoning", "overall"):
        assert summary[block]["J&F"] == 100.0 and summary[block]["R"] == 100.0
    assert summary["J&F"] == 100.0 and summary["R"] == 100.0
    assert summary["referring"]["num_expressions"] == 2 and summary["reasoning"]["num_expressions"] == 1
    assert summary["no_target"]["num_expressions"] == 1 and summary["no_target"]["J&F"] == 100.0
    assert summary["prediction_files"]["unscored_prediction_videos"] == 0   # "UVO/all/v1" nests
    assert {r["type_id"] for r in rows} == {"0", "1", "2"} and "R" in rows[0]


def test_revos_empty_predictions(tmp_path, revos):
    root, fixture = revos
    pred = tmp_path / "pred_empty"
    write_predictions(pred, fixture, empty(fixture))
    summary, _ = run_score(tmp_path, root, pred, "revos")
    # referring: "UVO/all/v1"/0 scores 0, vidB/0 scores 1/2 (one empty-GT frame); reasoning 0.
    assert summary["referring"]["J"] == pytest.approx(25.0)
    assert summary["reasoning"]["J"] == 0.0
    assert summary["overall"]["J&F"] == pytest.approx(12.5)
    assert summary["R"] == 100.0          # nothing predicted: no false positives
    _assert_revos(summary, _revos_expected_summary(fixture, empty(fixture)))


def test_revos_shifted_predictions_and_false_alarm_on_no_target(tmp_path, revos):
    root, fixture = revos
    preds = shifted(fixture)
    preds[("UVO/all/v1", "2")] = np.stack([A, A, A])      # a false alarm where there is no target
    pred = tmp_path / "pred_shift"
    write_predictions(pred, fixture, preds)
    summary, rows = run_score(tmp_path, root, pred, "revos")
    # Closed forms, video "UVO/all/v1" (foreground |A| + |B| = 48 + 60 on frames 0, 1; 48 on frame 2):
    # referring A shifted by 3 -> FP = 6 * 3 = 18 per frame.
    r_ref = np.mean([1 - 18 / 108, 1 - 18 / 108, 1 - 18 / 48])
    row = {(r["video"], r["exp_id"]): r for r in rows}
    assert float(row[("UVO/all/v1", "0")]["R"]) == pytest.approx(100 * r_ref, abs=1e-4)
    assert float(row[("UVO/all/v1", "0")]["J"]) == pytest.approx(100 * 5 / 11, abs=1e-4)
    # reasoning A + B shifted -> FP = 18 + 18 on frames 0, 1; 18 on frame 2.
    r_rea = np.mean([1 - 36 / 108, 1 - 36 / 108, 1 - 18 / 48])
    assert float(row[("UVO/all/v1", "1")]["R"]) == pytest.approx(100 * r_rea, abs=1e-4)
    # no target, predicted A: J = F = 0, R = 1 - 48 / |fg|; reported, but not in overall.
    assert summary["no_target"]["J&F"] == 0.0
    assert summary["no_target"]["R"] == pytest.approx(100 * np.mean([1 - 48 / 108, 1 - 48 / 108, 0.0]))
    _assert_revos(summary, _revos_expected_summary(fixture, preds))


# ------------------------------------------------- Ref-YouTube-VOS / Ref-DAVIS layout


@pytest.mark.parametrize("fmt", ["refytvos", "davis"])
def test_refytvos_layout_with_palette_annotations(tmp_path, fmt):
    root = tmp_path / fmt
    frames = ["00000", "00005", "00010"]
    ids = np.zeros((H, W), np.uint8)
    ids[A] = 1
    ids[B] = 2
    meta = {"videos": {"vid": {"frames": frames, "expressions": {
        "0": {"exp": "the first thing", "obj_id": "1"}, "1": {"exp": "the second thing", "obj_id": "2"}}}}}
    root.mkdir()
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    _write_frames(root, "vid", frames)
    (root / "Annotations" / "vid").mkdir(parents=True)
    for name in frames:
        img = Image.fromarray(ids, mode="P")
        img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        img.save(root / "Annotations" / "vid" / f"{name}.png")
    fixture = {"videos": {"vid": frames}}
    preds = {("vid", "0"): np.stack([A] * 3), ("vid", "1"): np.zeros((3, H, W), bool)}
    pred = tmp_path / "pred"
    write_predictions(pred, fixture, preds)
    summary, rows = run_score(tmp_path, root, pred, fmt, "--split", "valid")
    assert [float(r["J&F"]) for r in rows] == [100.0, 0.0]
    assert summary["J&F"] == pytest.approx(50.0) and "R" not in summary


def test_stderr_and_target_count_splits_from_the_readers_object_ids(tmp_path, mevis, revos):
    root, fixture = mevis
    pred = tmp_path / "pred_empty_split"
    write_predictions(pred, fixture, empty(fixture))
    summary, _ = run_score(tmp_path, root, pred, "mevis")
    # Per-expression J&F x100: vidA/0 (1 object) 0, vidA/1 (2 objects) 0, vidB/0 (1 object) 50.
    # mean 50/3; sample std = 50/sqrt(3); stderr = std / sqrt(3) = 50/3.
    assert summary["J&F_stderr"] == pytest.approx(50 / 3)
    assert summary["multi_target"]["J&F"] == 0.0 and summary["multi_target"]["num_expressions"] == 1
    assert summary["single_target"]["J&F"] == pytest.approx(25.0)
    root, fixture = revos
    pred = tmp_path / "pred_revos_gt"
    write_predictions(pred, fixture, fixture["gts"])
    summary, _ = run_score(tmp_path, root, pred, "revos")
    # The no-target expression (type 2, no objects) is in neither split.
    assert summary["multi_target"]["num_expressions"] == 1 and summary["single_target"]["num_expressions"] == 2
    assert summary["J&F_stderr"] is None          # one reasoning expression: no error estimate for overall
