"""W&B media as users expect it: overlays with switchable mask layers and captions, an image column
in the sample tables, the SFT cold start as its own W&B run in the GRPO run's group, the run id
and where to find the run logged at start. Checked on offline W&B runs read back from disk."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from rl.config import TrackingConfig, load_config
from rl.eval.overlays import Overlay, attach_scores, overlay_quota, select_overlays
from rl.sample_views import GT_COLOUR, PRED_COLOUR, SampleView, sample_view
from rl.tracking import Tracker
from rl.wandb_offline import find_offline_runs, read_offline_run
from tests.wandb_helpers import read_runs

OFFLINE = TrackingConfig(wandb_mode="offline", project="p")


def _overlay(video: str, exp_id: str, h: int = 112, w: int = 120, shade: int = 60, jf=None, gt: bool = True) -> Overlay:
    frame = np.full((h, w, 3), shade, np.uint8)
    pred = np.zeros((h, w), bool)
    pred[10:20, 10:30] = True                      # 200 px
    mask = np.zeros((h, w), bool)
    mask[12:22, 12:34] = True                      # 220 px
    return Overlay(video, exp_id, f"query of {video}/{exp_id}", 3, frame, pred, mask if gt else None, jf)


_read_runs = read_runs


def _only_run(root: Path, written: Callable[[Any], bool]):
    run = _read_runs(root, 1, written)[0]
    return run.path, run


# ------------------------------------------------------------------ overlays


def test_overlays_reach_wandb_as_images_with_prediction_and_gt_layers_captions_and_384px(tmp_path):
    tracker = Tracker(tmp_path, OFFLINE, {}, default_name="t")
    overlays = [_overlay("vidA", "0", shade=60, jf=51.25), _overlay("vidB", "2", shade=90, gt=False)]
    paths = tracker.log_overlays("val/overlays", overlays, step=5)
    tracker.finish()

    folder, run = _only_run(tmp_path, lambda r: any("val/overlays/_type" in row for row in r.history))
    row = next(r for r in run.history if "val/overlays/_type" in r)
    assert row["_step"] == 5 and row["val/overlays/count"] == 2
    # 112 x 120 enlarged by ceil(384 / 112) = 4: 448 x 480, nearest neighbour.
    assert (row["val/overlays/height"], row["val/overlays/width"]) == (448, 480)
    assert row["val/overlays/captions"] == ['vidA #0 frame 3: "query of vidA/0" | J&F 51.2',
                                            'vidB #2 frame 3: "query of vidB/2" | J&F n/a']
    masks = row["val/overlays/all_masks"]
    assert set(masks[0]) == {"prediction", "ground_truth"} and set(masks[1]) == {"prediction"}
    pred = np.asarray(Image.open(folder / "files" / masks[0]["prediction"]["path"]))
    gt = np.asarray(Image.open(folder / "files" / masks[0]["ground_truth"]["path"]))
    assert pred.shape == gt.shape == (448, 480)
    assert (pred == 1).sum() == 200 * 16 and set(np.unique(pred)) == {0, 1}
    assert (gt == 2).sum() == 220 * 16 and set(np.unique(gt)) == {0, 2}
    assert pred[40, 40] == 1 and pred[39, 40] == 0           # row 10 starts at 40 after x4
    frames = [np.asarray(Image.open(folder / "files" / f)) for f in row["val/overlays/filenames"]]
    assert [f.shape for f in frames] == [(448, 480, 3)] * 2 and frames[0][0, 0].tolist() == [60, 60, 60]

    # The run directory: one distinct, named PNG per expression, captions beside them.
    assert [p.name for p in paths] == ["step_000005_0_vidA_0.png", "step_000005_1_vidB_2.png"]
    drawn = [np.asarray(Image.open(p)) for p in paths]
    assert drawn[0].shape == (448, 480, 3) and not np.array_equal(drawn[0], drawn[1])
    # Drawn at 112 x 120, then enlarged: pixel (10, 10) is predicted only, (16, 33) on the GT boundary.
    assert (drawn[0][40:44, 40:44] == [158, 30, 30]).all()   # 0.5 * 60 + 0.5 * (255, 0, 0), rounded
    assert (drawn[0][64:68, 132:136] == [0, 255, 0]).all()   # the boundary is 4 px wide
    assert (drawn[1] == [0, 255, 0]).all(axis=-1).sum() == 0  # no GT: no boundary
    index = json.loads((tmp_path / "images" / "val_overlays" / "step_000005.json").read_text())
    assert [(e["file"], e["video"], e["exp_id"], e["J&F"]) for e in index] == [
        ("step_000005_0_vidA_0.png", "vidA", "0", 51.25), ("step_000005_1_vidB_2.png", "vidB", "2", None)]


def test_large_frames_keep_their_size_and_small_ones_grow_by_an_integer_factor():
    assert _overlay("v", "0", h=400, w=640).layers()[0].shape == (400, 640, 3)
    frame, pred, gt = _overlay("v", "0", h=100, w=300).layers()        # ceil(384 / 100) = 4
    assert frame.shape == (400, 1200, 3) and pred.shape == gt.shape == (400, 1200)
    assert pred.sum() == 200 * 16


def test_overlay_selection_spreads_over_videos_once_per_expression_and_reads_scores(tmp_path):
    items = [_overlay("a", "0"), _overlay("a", "1"), _overlay("a", "0"), _overlay("b", "0"), _overlay("c", "4"),
             _overlay("b", "1")]
    chosen = select_overlays(items, 4)
    assert [o.key for o in chosen] == [("a", "0"), ("b", "0"), ("c", "4"), ("a", "1")]
    assert [o.key for o in select_overlays(items, 10)] == [("a", "0"), ("b", "0"), ("c", "4"), ("a", "1"), ("b", "1")]
    assert overlay_quota(4, 3) == 2 and overlay_quota(4, 8) == 1 and overlay_quota(0, 3) == 0
    table = tmp_path / "per_expression.csv"
    table.write_text("video,exp_id,type_id,J,F,J&F\na,0,0,10,30,20.0\nc,4,0,0,0,0.0\n")
    attach_scores(chosen, table)
    assert [o.jf for o in chosen] == [20.0, None, 0.0, None]


def test_evaluation_overlays_cover_distinct_videos_and_carry_query_and_jf(tmp_path):
    from data.readers import open_dataset
    from data.synthetic import generate_synthetic_dataset
    from rl.config import SyntheticConfig
    from rl.eval.actor import package_result
    from rl.eval.pipeline import EvalPipeline

    root = tmp_path / "data"
    generate_synthetic_dataset(root, SyntheticConfig(num_videos=3, num_frames=4, height=112, width=112, seed=1),
                               "valid")
    cfg = load_config(["eval.progress=false", "eval.num_overlays=3", "eval.sampler=oracle", "eval.oracle_cues=true"])
    reader = open_dataset(str(root), "synthetic", "valid")
    ids = reader.video_ids()
    pipeline = EvalPipeline(cfg, None)
    out = tmp_path / "out"
    report = pipeline.predict(reader, ids, str(out))
    summary = pipeline.score(report, str(root), "synthetic", "valid", str(out))
    result = package_result(summary, report, str(out), 0, cfg.eval.num_overlays)

    overlays = result["overlays"]
    assert sorted(o.video for o in overlays) == sorted(ids)              # one per video, not three of the first
    with open(out / "per_expression.csv", newline="") as handle:
        scores = {(r["video"], r["exp_id"]): float(r["J&F"]) for r in csv.DictReader(handle)}
    for item in overlays:
        sample = reader[item.video]
        assert item.query == sample.expressions[item.exp_id].text and item.jf == scores[item.key]
        assert item.gt is not None and item.gt.shape == item.pred.shape == item.frame.shape[:2]
        assert f'"{item.query}"' in item.caption() and f"J&F {item.jf:.1f}" in item.caption()
    assert [o.blended().shape for o in result["overlays"]] == [(448, 448, 3)] * len(overlays)


# ------------------------------------------------------------------ sample tables


def _keyframe(tmp_path: Path, name: str = "key.png", shade: int = 100) -> str:
    path = tmp_path / name
    Image.fromarray(np.full((112, 112, 3), shade, np.uint8)).save(path)
    return str(path)


def test_sample_view_draws_predicted_boxes_and_points_red_and_gt_boxes_green(tmp_path):
    record = {"images": [_keyframe(tmp_path)],
              "ground_truth": {"objects": [{"bbox_2d": [60, 60, 100, 100], "point_2d": [80, 80]}]}}
    view = sample_view(record, '<think>t</think><answer>[{"bbox_2d": [10, 10, 40, 50], "point_2d": [25, 20]}]</answer>')
    assert view == SampleView(record["images"][0], [(10.0, 10.0, 40.0, 50.0)], [(25.0, 20.0)],
                              [(60.0, 60.0, 100.0, 100.0)], [(80.0, 80.0)])
    image = view.render()
    assert image.shape == (448, 448, 3)                  # 112 x ceil(384 / 112) = 4
    assert image[120, 41].tolist() == list(PRED_COLOUR)  # left edge of the predicted box, x = 10 * 4
    assert image[320, 241].tolist() == list(GT_COLOUR)   # left edge of the GT box, x = 60 * 4
    assert image[80, 100].tolist() == list(PRED_COLOUR)  # the predicted point (25, 20) * 4
    assert image[120, 120].tolist() == [100, 100, 100]   # inside the predicted box: untouched
    # Unparsable answers draw only the ground truth; a record without images has no view.
    bare = sample_view(record, "no answer")
    assert bare.pred_boxes == [] and bare.gt_boxes == [(60.0, 60.0, 100.0, 100.0)]
    assert sample_view({"ground_truth": {}}, "x") is None


def test_veason_answers_show_the_frame_they_picked(tmp_path):
    frames = [_keyframe(tmp_path, f"f{i}.png", 50 * i) for i in range(3)]
    record = {"images": frames, "ground_truth": {"frames": [0, 4, 8], "keyframe": 4,
                                                 "frame_boxes": [[], [[1, 1, 5, 5]], [[2, 2, 9, 9]]]}}
    view = sample_view(record, '<answer>{"keyframe_timestamp": 8, "bbox_2d_list": [[3, 3, 7, 7]]}</answer>')
    assert view.image_path == frames[2] and view.pred_boxes == [(3.0, 3.0, 7.0, 7.0)]
    assert view.gt_boxes == [(2.0, 2.0, 9.0, 9.0)]
    missed = sample_view(record, '<answer>{"keyframe_timestamp": 5, "bbox_2d_list": []}</answer>')
    assert missed.image_path == frames[1] and missed.gt_boxes == [(1.0, 1.0, 5.0, 5.0)]


def test_sample_table_has_an_image_column_and_the_reward_columns(tmp_path):
    run_dir = tmp_path / "run"
    tracker = Tracker(run_dir, OFFLINE, {}, default_name="t")
    record = {"images": [_keyframe(tmp_path)], "ground_truth": {"objects": [{"bbox_2d": [60, 60, 100, 100]}]}}
    responses = ['<answer>[{"bbox_2d": [10, 10, 40, 50]}]</answer>', "nothing"]
    rows = [{"id": "s0", "query": "q", "response": r, "score": 1.5 - i, "accuracy": float(i), "think_format": 1.0}
            for i, r in enumerate(responses)]
    tracker.log_samples(rows, step=3, views=[sample_view(record, r) for r in responses])
    with pytest.raises(ValueError, match="2 rows but 1 views"):
        tracker.log_samples(rows, step=3, views=[None])
    tracker.finish()

    # samples.jsonl stays JSON: the rows plus the keyframe's path.
    lines = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines] == [record["images"][0]] * 2
    assert lines[0]["accuracy"] == 0.0 and lines[1]["score"] == 0.5

    _, run = _only_run(run_dir, lambda r: any(row.get("samples/_type") for row in r.history) and r.artifacts)
    row = next(r for r in run.history if r.get("samples/_type") == "table-file")
    assert row["samples/ncols"] == 7 and row["samples/nrows"] == 2
    files = run.artifacts[f"run-{run.run_id}-samples"]
    table = json.loads(Path(files["samples.table.json"]).read_text())
    assert table["columns"] == ["image", "id", "query", "response", "score", "accuracy", "think_format"]
    assert [r[4:] for r in table["data"]] == [[1.5, 0.0, 1.0], [0.5, 1.0, 1.0]]
    images = {table["data"][i][0]["path"] for i in range(2)}
    assert len(images) == 2                                        # one image per row, each its own drawing
    for path in images:
        staged = Path(files[path])
        assert run_dir / "wandb" in staged.parents                # kept with the offline run
        assert np.asarray(Image.open(staged)).shape == (448, 448, 3)


# ------------------------------------------------------------------ run start and SFT


def test_the_run_id_folder_and_sync_command_are_logged_at_start(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="rl.tracking"):
        tracker = Tracker(tmp_path, OFFLINE, {}, default_name="exp", default_group="exp", job_type="grpo")
        tracker.finish()
    folder, run = _only_run(tmp_path, lambda r: bool(r.job_type))
    assert run.run_id == tracker.run_id and run.group == "exp" and run.job_type == "grpo"
    start = next(r for r in caplog.records if r.name == "rl.tracking").getMessage()
    assert f"W&B run {tracker.run_id} (p/exp, grpo) is offline" in start
    assert f"files in {folder}" in start and f"`wandb sync {folder}`" in start


class _FakeGroup:
    """The SFT policy group without Ray: a decreasing loss per step, an HF export of one file."""

    world_size = 1

    def __init__(self, *args, **kwargs):
        self.steps = 0

    def shard(self, encoded):
        return [encoded]

    def sft_step(self, shards, num_tokens):
        self.steps += 1
        return {"sft/loss": 2.0 / self.steps, "sft/grad_norm": 0.5, "sft/lr": 1e-4, "sft/num_tokens": float(num_tokens)}

    def export_hf(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.json").write_text("{}")

    def shutdown(self):
        pass


class _FakeEncoded:
    def __init__(self, n: int):
        self.n = n
        self.response_mask = np.ones((n, 3))

    def __len__(self):
        return self.n

    def select(self, indices):
        return _FakeEncoded(len(indices))

    def trimmed(self):
        return self


@pytest.fixture
def fake_sft_workers(monkeypatch):
    """``run_sft`` without Ray, torch or a model: its worker-side imports answered by stand-ins."""
    import sys

    import rl.sft

    monkeypatch.setattr(rl.sft, "PlacementPlan", lambda *a, **k: SimpleNamespace(create=lambda: None,
                                                                                remove=lambda: None))
    fakes = {
        "rl.workers.policy_group": SimpleNamespace(PolicyGroup=_FakeGroup),
        "rl.models.loading": SimpleNamespace(load_processor=lambda path: None),
        "rl.models.inputs": SimpleNamespace(encode_for_sft=lambda proc, chunk, targets: len(chunk)),
        "rl.models.encoded_batch": SimpleNamespace(EncodedBatch=SimpleNamespace(
            concat=lambda parts: _FakeEncoded(sum(parts)))),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_sft_is_its_own_wandb_run_in_the_grpo_group_finished_before_grpo_starts(tmp_path, fake_sft_workers, mode):
    import wandb

    from rl.sft import run_sft

    run_dir = tmp_path / "run"
    cfg = load_config([f"trainer.run_dir={run_dir}", "trainer.experiment_name=exp", "sft.max_steps=3",
                       "sft.batch_size=2", f"tracking.wandb_mode={mode}", "tracking.project=p"])
    records = [{"id": f"r{i}", "sft_target": "<answer>[]</answer>"} for i in range(4)]
    assert run_sft(cfg, "init", records) == run_dir / "sft"
    assert wandb.run is None                                        # finished: the GRPO run can start
    logged = [json.loads(line) for line in (run_dir / "sft" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["sft/loss"]) for r in logged] == [(1, 2.0), (2, 1.0), (3, 2.0 / 3)]
    if mode == "disabled":
        assert not (run_dir / "wandb").exists()
        return

    grpo = Tracker(run_dir, cfg.tracking, {}, default_name="exp", default_group="exp", job_type="grpo")
    grpo.log({"critic/score/mean": 1.0}, 1)
    grpo.finish()
    runs = {r.job_type: r for r in _read_runs(run_dir / "wandb", 2, lambda r: len(r.history) >= (3 if r.job_type == "sft" else 1))}
    assert set(runs) == {"sft", "grpo"}
    sft, main = runs["sft"], runs["grpo"]
    assert (sft.name, sft.group, sft.project) == ("exp-sft", "exp", "p")
    assert (main.name, main.group, main.project) == ("exp", "exp", "p")
    assert sft.run_id != main.run_id and sft.config["sft"]["max_steps"] == 3
    assert [(r["_step"], r["sft/loss"], r["sft/step"]) for r in sft.history if "sft/loss" in r] == [
        (1, 2.0, 1), (2, 1.0, 2), (3, 2.0 / 3, 3)]
    assert sft.metrics["sft/*"] == "sft/step"
    assert not any("training/global_step" in r for r in sft.history)


def test_sample_image_paths_inside_the_run_directory_are_stored_relative(tmp_path):
    # Two runs that built their data inside their own directories log the same samples.jsonl lines.
    lines = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        (run_dir / "data").mkdir(parents=True)
        record = {"images": [_keyframe(run_dir / "data")], "ground_truth": {"objects": []}}
        tracker = Tracker(run_dir, TrackingConfig(wandb_mode="disabled"), {}, default_name="t")
        tracker.log_samples([{"id": "s0", "score": 1.0}], step=1, views=[sample_view(record, "nothing")])
        tracker.finish()
        lines.append((run_dir / "samples.jsonl").read_text())
    assert lines[0] == lines[1] and json.loads(lines[0])["image"] == "data/key.png"
