"""The evaluation pipeline on small synthetic data sets (GrabCut + optical flow, no weights).

Two data sets: ``steady`` (objects stay in view, at most 0.02 of the frame side per
frame: what the optical-flow propagator can follow) and ``default`` (the generator's
defaults: objects enter and leave, so the keyframe choice matters). Expectations come
from the task definition (J&F thresholds, empty masks, hand-built cues), not from
the pipeline's own output.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data.cues import inscribed_circle_point, mask_to_box
from data.readers import open_dataset
from data.synthetic import SceneRules, generate_synthetic_dataset
from rl.config import ConfigError, SyntheticConfig, load_config
from rl.eval.pipeline import STAGES, EvalPipeline, check_eval_config
from tests.rl.eval.test_eval_sampler import ScriptedBackend

SPLIT = "valid"


def make_cfg(*overrides: str):
    return load_config(["eval.progress=false", "eval.num_overlays=2", *overrides])


@pytest.fixture(scope="module")
def steady(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("steady")
    cfg = SyntheticConfig(num_videos=6, num_frames=8, height=112, width=112, max_speed=0.02, seed=1)
    generate_synthetic_dataset(root, cfg, SPLIT, rules=SceneRules(p_enter=0.0, p_leave=0.0))
    return root


@pytest.fixture(scope="module")
def default_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("default")
    generate_synthetic_dataset(root, SyntheticConfig(num_videos=5, num_frames=8, height=112, width=112, seed=1), SPLIT)
    return root


def read_rows(out: Path, name: str) -> list[dict]:
    with open(out / name) as handle:
        return list(csv.DictReader(handle))


def single_target_jf(out: Path) -> float:
    diag = {(r["video"], r["exp_id"]): int(r["num_targets"]) for r in read_rows(out, "diagnostics.csv")}
    rows = [r for r in read_rows(out, "per_expression.csv") if diag[(r["video"], r["exp_id"])] == 1]
    assert rows
    return float(np.mean([float(r["J&F"]) for r in rows]))


def run(root: Path, out: Path, *overrides: str, backend=None, max_videos=None) -> dict:
    pipeline = EvalPipeline(make_cfg(*overrides), None, backend=backend)
    return pipeline.run(str(root), "synthetic", SPLIT, str(out), max_videos=max_videos)


@pytest.fixture(scope="module")
def oracle_run(steady, tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle_out")
    return run(steady, out, "eval.sampler=oracle", "eval.oracle_cues=true"), out


# --------------------------------------------------------------------------- scores


def test_oracle_cues_score_single_target_expressions_above_85(oracle_run):
    summary, out = oracle_run
    jf = single_target_jf(out)
    print(f"\nsteady synthetic, GT keyframe + GT cues, GrabCut + flow: single-target J&F {jf:.1f}; "
          f"referring {summary['referring']['J&F']:.1f}, reasoning {summary['reasoning']['J&F']:.1f}, "
          f"overall {summary['overall']['J&F']:.1f}, no-target {summary['no_target']['J&F']:.1f}")
    assert jf > 85.0
    assert summary["pipeline"]["sampler"] == "oracle" and summary["pipeline"]["oracle_cues"] is True
    assert summary["diagnostics"]["keyframe_area_ratio"] == 1.0          # the oracle picks a largest-area frame
    assert summary["diagnostics"]["box_iou_before_segmentation"] == 1.0


def test_first_frame_scores_below_the_oracle_keyframe(default_data, tmp_path):
    oracle = run(default_data, tmp_path / "oracle", "eval.sampler=oracle", "eval.oracle_cues=true")
    first = run(default_data, tmp_path / "first", "eval.sampler=first_frame", "eval.oracle_cues=true")
    print(f"\ndefault synthetic (objects enter / leave), GT cues: oracle keyframe J&F {oracle['J&F']:.1f} "
          f"(single-target {single_target_jf(tmp_path / 'oracle'):.1f}), first frame {first['J&F']:.1f}")
    assert first["J&F"] < oracle["J&F"]
    assert first["diagnostics"]["keyframe_area_ratio"] < 1.0


# --------------------------------------------------------------------------- outputs


def test_outputs_layout_timing_and_diagnostics(oracle_run, steady):
    summary, out = oracle_run
    reader = open_dataset(steady, "synthetic", SPLIT)
    for vid in reader.video_ids():
        sample = reader[vid]
        for exp_id in sample.expressions:
            for name in sample.frame_names:
                path = out / vid / exp_id / f"{name}.png"
                assert path.is_file(), path
                assert np.asarray(Image.open(path)).shape == (sample.height, sample.width)
    assert summary["prediction_files"]["missing_frames"] == 0
    assert set(summary["timing_s"]) == set(STAGES)
    for stage in ("sampler", "grounding", "segmentation", "propagation", "scoring"):
        assert summary["timing_s"][stage] >= 0.0
    assert summary["timing_s"]["propagation"] > 0 and summary["timing_s"]["scoring"] > 0
    assert abs(sum(summary["timing_share"].values()) - 1.0) < 1e-6
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["J&F"] == pytest.approx(summary["J&F"]) and "diagnostics" in on_disk
    diag = read_rows(out, "diagnostics.csv")
    assert len(diag) == summary["num_expressions"] + summary["no_target"]["num_expressions"]


def test_max_videos_limits_prediction_and_scoring(steady, tmp_path):
    summary = run(steady, tmp_path, "eval.sampler=first_frame", max_videos=2)
    assert summary["num_videos"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["synth_00000", "synth_00001"]


# --------------------------------------------------------------------------- policy grounding


def gt_answer_script(root: Path, scale: int):
    """A 'policy' answering the KTG question with the GT cues of the shown keyframe, x ``scale``."""
    reader = open_dataset(root, "synthetic", SPLIT)

    def script(record, k):
        video, frame = Path(record["images"][-1]).parent.name, Path(record["images"][-1]).name.split("_")[0]
        sample = reader[video]
        t = sample.frame_names.index(frame)
        exp = next(e for e in sample.expressions.values() if f'"{e.text}"' in record["prompt"])
        items = []
        for obj in exp.obj_ids:
            mask = sample.object_mask(obj, t)
            if mask.any():
                box, point = mask_to_box(mask), inscribed_circle_point(mask)
                items.append({"bbox_2d": [scale * v for v in box], "point_2d": [scale * v for v in point]})
        return f"<think>found</think><answer>{json.dumps(items)}</answer>"

    return script


def test_policy_cues_are_mapped_back_to_the_original_resolution(steady, tmp_path):
    backend = ScriptedBackend(gt_answer_script(steady, scale=2))
    summary = run(steady, tmp_path, "eval.sampler=oracle", "data.input_size=[224,224]",
                  "eval.segmenter.backend=oracle_box", backend=backend, max_videos=3)
    assert summary["pipeline"]["oracle_cues"] is False
    assert summary["stats"]["grounding/ok"] + summary["stats"].get("grounding/empty", 0) == len(backend.calls[0])
    assert len(backend.calls) == 1                                   # one batched KTG call for 3 videos
    assert all(r["images"][-1].endswith("_224x224.png") for r in backend.calls[0])
    reader = open_dataset(steady, "synthetic", SPLIT)
    for row in read_rows(tmp_path, "diagnostics.csv"):
        assert float(row["box_iou"]) == 1.0
        sample = reader[row["video"]]
        k = int(row["keyframe"])
        pred = np.asarray(Image.open(tmp_path / row["video"] / row["exp_id"] / f"{sample.frame_names[k]}.png")) > 0
        expected = np.zeros_like(pred)
        for obj in sample.expressions[row["exp_id"]].obj_ids:      # box fill of each GT object's extreme pixels
            box = mask_to_box(sample.object_mask(obj, k))
            if box is not None:
                expected[box[1]: box[3] + 1, box[0]: box[2] + 1] = True
        assert np.array_equal(pred, expected), row


@pytest.mark.parametrize("answer, status", [("<think>none</think><answer>[]</answer>", "empty"),
                                            ("I cannot tell.", "malformed"),
                                            ('<answer>[{"bbox_2d": "big"}]</answer>', "malformed")])
def test_empty_or_malformed_answers_give_empty_masks(steady, tmp_path, answer, status):
    backend = ScriptedBackend(lambda record, k: answer)
    summary = run(steady, tmp_path, "eval.sampler=first_frame", backend=backend, max_videos=1)
    pngs = list(tmp_path.glob("synth_*/*/*.png"))
    assert pngs and not any(np.asarray(Image.open(p)).any() for p in pngs)
    assert summary["stats"][f"grounding/{status}"] == len(backend.calls[0])
    assert summary["diagnostics"]["empty_keyframe_masks"] == len(backend.calls[0])


def test_veason_sampler_boxes_prompt_the_segmenter(steady, tmp_path):
    answer = '<answer>{"keyframe_timestamp": 2, "bbox_2d_list": [[0, 0, 279, 279]]}</answer>'
    backend = ScriptedBackend(lambda record, k: answer)
    summary = run(steady, tmp_path, "eval.sampler=veason", "data.input_size=[560,560]",
                  "data.num_sampled_frames=4", "eval.segmenter.backend=oracle_box", backend=backend, max_videos=1)
    assert len(backend.calls) == 1                                   # no separate KTG question
    assert summary["stats"]["grounding/sampler"] == len(backend.calls[0])
    row = read_rows(tmp_path, "diagnostics.csv")[0]
    assert row["keyframe"] == "2"                                    # frames 0, 2, 4, 6 shown
    # Box [0, 0, 279, 279] at 560 -> [0, 0, 56, 56] at 112 (int(279 * 0.2 + 0.5) = 56): a 57 x 57 square.
    assert int(row["keyframe_mask_area"]) == 57 * 57


# --------------------------------------------------------------------------- bad input


def test_corrupt_frame_skips_the_video_and_is_counted(steady, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(steady, data)
    (data / SPLIT / "JPEGImages" / "synth_00001" / "00003.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    summary = run(data, out, "eval.sampler=first_frame", max_videos=3)
    assert summary["skipped_videos"]["count"] == 1
    assert summary["skipped_videos"]["videos"][0]["video"] == "synth_00001"
    assert "00003.jpg" in summary["skipped_videos"]["videos"][0]["reason"]
    assert summary["num_videos"] == 2
    assert {r["video"] for r in read_rows(out, "per_expression.csv")} == {"synth_00000", "synth_00002"}


def test_split_without_masks_is_predicted_but_not_scored(steady, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(steady, data)
    for name in ("mask_dict.json", "mask_dict_foreground.json"):
        (data / SPLIT / name).unlink()
    backend = ScriptedBackend(lambda record, k: "<answer>[]</answer>")
    summary = run(data, tmp_path / "out", "eval.sampler=first_frame", backend=backend, max_videos=2)
    assert summary["unscored_no_gt"] == 2 and summary["J&F"] is None
    reader = open_dataset(data, "synthetic", SPLIT)
    expected = sum(len(reader[v].expressions) * reader[v].num_frames for v in reader.video_ids()[:2])
    assert len(list((tmp_path / "out").glob("synth_*/*/*.png"))) == expected
    with pytest.raises(ValueError, match="ground-truth"):                            # GT cues need masks
        run(data, tmp_path / "out2", "eval.sampler=first_frame", max_videos=1)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    # Checked before the model stack is imported (rl.models.loading validates an existing folder further).
    with pytest.raises(FileNotFoundError, match="nowhere"):
        EvalPipeline(make_cfg(), str(tmp_path / "nowhere"))


def test_mllm_sampler_without_a_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.sampler='rcot' asks the MLLM"):
        EvalPipeline(make_cfg("eval.sampler=rcot"), None)


@pytest.mark.parametrize("override, key", [("eval.sampler=random", "eval.sampler"),
                                           ("eval.propagator=magic", "eval.propagator"),
                                           ("eval.htfs_delta=1.5", "eval.htfs_delta"),
                                           ("eval.videos_per_batch=0", "eval.videos_per_batch"),
                                           ("eval.sampler_frame_size=[0,10]", "eval.sampler_frame_size"),
                                           ("eval.dataset_format=coco", "eval.dataset_format")])
def test_bad_eval_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_eval_config(make_cfg(override))


def test_xmem_checkpoint_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval.xmem_checkpoint"):
        EvalPipeline(make_cfg("eval.propagator=xmem", f"eval.xmem_checkpoint={tmp_path}/XMem.pth"), None)
