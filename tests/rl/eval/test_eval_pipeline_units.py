"""Pieces of the evaluation pipeline: answer -> cues, GT cues, box IoU diagnostic, propagation guard, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from rewards.vision.base import ObjectPrompt
from rl.eval.actor import summary_metrics
from data.types import Expression, VideoSample
from rl.eval.pipeline import gt_union_areas, overlay
from rl.eval.propagate import propagate_mask
from rl.eval.segment import (
    Grounding,
    ObjectCue,
    box_iou_before_segmentation,
    cue_prompts,
    grounding_prompt,
    oracle_cues,
    parse_grounding,
)


def test_answer_cues_are_scaled_back_by_hand():
    # Input 840 x 420 for a 280 x 140 frame: x and y both / 3, int(v / 3 + 0.5).
    answer = ('<think>a</think><answer>[{"bbox_2d": [30, 60, 300, 400], "point_2d": [100, 101], '
              '"neg_point_2d": [5, 7]}, {"point_2d": [839, 419]}]</answer>')
    g = parse_grounding(answer, (840, 420), (280, 140))
    assert g.status == "ok" and len(g.objects) == 2
    assert g.objects[0] == ObjectCue(box=(10, 20, 100, 133), point=(33, 34), neg_point=(2, 2))
    assert g.objects[1] == ObjectCue(box=None, point=(279, 139), neg_point=None)   # clipped to the image
    assert g.boxes.tolist() == [[10, 20, 100, 133]]


@pytest.mark.parametrize("answer, status, count", [
    ("<answer>[]</answer>", "empty", 0),
    ('<answer>{"bbox_2d": [0, 0, 3, 3], "point_2d": [1, 1]}</answer>', "ok", 1),   # one object, not in a list
    ('<answer>[{"bbox_2d": [0, 0, 3]}, 7, "x"]</answer>', "malformed", 0),
    ("<answer>[{'bbox_2d': [0, 0, 3, 3]}]</answer>", "malformed", 0),            # not JSON
    ("no answer at all", "malformed", 0),
    (None, "malformed", 0),
])
def test_grounding_statuses(answer, status, count):
    g = parse_grounding(answer, (10, 10), (10, 10))
    assert g.status == status and len(g.objects) == count


def test_oracle_cues_come_from_each_object_mask():
    a = np.zeros((20, 30), bool)
    a[2:7, 3:12] = True                       # rows 2..6, cols 3..11
    b = np.zeros((20, 30), bool)
    g = oracle_cues([a, b])                   # b is absent on this frame
    assert g.status == "oracle" and len(g.objects) == 1
    obj = g.objects[0]
    assert obj.box == (3, 2, 11, 6)
    assert obj.point == (7, 4)                # middle of a 9 x 5 bar


def test_box_iou_diagnostic_by_hand():
    gt = np.array([[0, 0, 9, 9], [20, 20, 29, 29]])
    # Perfect match of one object, the other missed: (1 + 0) / max(1, 2).
    assert box_iou_before_segmentation(np.array([[20, 20, 29, 29]]), gt) == pytest.approx(0.5)
    # [0,0,9,9] vs [5,0,14,9]: inter 5 x 10 = 50, union 100 + 100 - 50 = 150 (+1-pixel areas).
    assert box_iou_before_segmentation(np.array([[5, 0, 14, 9]]), gt[:1]) == pytest.approx(50 / 150)
    assert box_iou_before_segmentation(np.zeros((0, 4)), np.zeros((0, 4))) == 1.0
    assert box_iou_before_segmentation(np.zeros((0, 4)), gt) == 0.0
    # Matching is one-to-one: two copies of one box cannot both match it.
    assert box_iou_before_segmentation(np.array([[0, 0, 9, 9], [0, 0, 9, 9]]), gt[:1]) == pytest.approx(0.5)


def test_cue_prompts_keep_negative_points_when_asked():
    obj = ObjectCue(box=(1, 2, 3, 4), point=(2, 3), neg_point=(9, 9))
    assert cue_prompts([obj]) == [ObjectPrompt(box=(1, 2, 3, 4), points=((2, 3), (9, 9)), labels=(1, 0))]
    assert cue_prompts([obj], use_negative=False) == [ObjectPrompt(box=(1, 2, 3, 4), points=((2, 3),), labels=(1,))]
    assert cue_prompts(Grounding([], "empty").objects) == []


def test_grounding_prompt_mentions_reference_frames_only_when_shown():
    assert "reference frames" not in grounding_prompt("the cat", (112, 112))
    text = grounding_prompt("the cat", (112, 112), num_reference=3, description="A cat sleeps.")
    assert text.startswith("The first 3 images are reference frames") and "A cat sleeps" in text


class _MustNotRun:
    def propagate(self, frames, keyframe, mask):  # pragma: no cover - the guard must not call it
        raise AssertionError("propagator called for an empty keyframe mask")


class _WrongShape:
    def propagate(self, frames, keyframe, mask):
        return np.zeros((1, 2, 2), bool)


def test_empty_keyframe_mask_gives_empty_masks_without_propagating():
    frames = np.zeros((5, 6, 7, 3), np.uint8)
    out = propagate_mask(_MustNotRun(), frames, 2, np.zeros((6, 7), bool))
    assert out.shape == (5, 6, 7) and out.dtype == bool and not out.any()
    mask = np.zeros((6, 7), bool)
    mask[1, 1] = True
    with pytest.raises(RuntimeError, match="shape"):
        propagate_mask(_WrongShape(), frames, 2, mask)
    with pytest.raises(ValueError, match="does not match"):
        propagate_mask(_MustNotRun(), frames, 2, np.ones((3, 3), bool))


def test_summary_metrics_names():
    summary = {"J": 50.0, "F": 70.0, "J&F": 60.0, "R": 90.0, "num_expressions": 4,
               "referring": {"J": 40.0, "F": 60.0, "J&F": 50.0}, "reasoning": None,
               "diagnostics": {"keyframe_area_ratio": 0.5, "aks_rounds": None},
               "timing_s": {"sampler": 1.5}, "skipped_videos": {"count": 0}}
    metrics = summary_metrics(summary)
    assert metrics["val/J&F"] == 60.0 and metrics["val/J"] == 50.0 and metrics["val/F"] == 70.0
    assert metrics["val/referring/J&F"] == 50.0 and "val/reasoning/J&F" not in metrics
    assert metrics["val/diagnostics/keyframe_area_ratio"] == 0.5 and "val/diagnostics/aks_rounds" not in metrics
    assert metrics["val/timing_s/sampler"] == 1.5
    assert "val/J&F_stderr" not in metrics and "val/multi_target/J&F" not in metrics
    more = summary_metrics({**summary, "J&F_stderr": 2.5, "num_videos": 16, "multi_target": {"J&F": 40.0},
                            "single_target": {"J&F": 70.0, "J&F_stderr": None}})
    assert more["val/J&F_stderr"] == 2.5 and more["val/num_videos"] == 16.0
    assert more["val/multi_target/J&F"] == 40.0 and more["val/single_target/J&F"] == 70.0


def test_select_videos_warns_when_the_split_is_smaller_than_max_videos(caplog):
    from rl.eval.actor import select_videos   # defined in rl.eval.datasets (EvalPipeline.run uses it too)

    ids = [f"v{i}" for i in range(4)]
    with caplog.at_level("WARNING", logger="rl.eval.datasets"):
        assert select_videos(ids, -1) == ids and select_videos(ids, 2) == ["v0", "v1"]
        assert not caplog.records
        assert select_videos(ids, 16, "runs/data/synthetic (synthetic, split valid)") == ids
    assert "eval.max_videos = 16" in caplog.text and "has only 4 videos" in caplog.text


def test_overlay_tints_the_prediction_and_draws_the_gt_boundary():
    image = np.full((6, 6, 3), 100, np.uint8)
    pred = np.zeros((6, 6), bool)
    pred[0, 0] = True
    gt = np.zeros((6, 6), bool)
    gt[2:5, 2:5] = True
    out = overlay(image, pred, gt)
    assert out.dtype == np.uint8 and out.shape == (6, 6, 3)
    assert out[0, 0].tolist() == [178, 50, 50]          # 0.5 * 100 + 0.5 * (255, 0, 0), rounded
    assert out[5, 5].tolist() == [100, 100, 100]
    assert (out == [0, 255, 0]).all(axis=-1).any()


def test_gt_union_areas_count_overlaps_once():
    a = np.zeros((2, 4, 5), bool)
    a[0, 0:2, 0:3] = True                 # 6 px on frame 0
    b = np.zeros((2, 4, 5), bool)
    b[0, 1:3, 1:4] = True                 # 6 px, 2 shared with a
    b[1, 3, 4] = True
    sample = VideoSample(
        dataset="t", split="v", video_id="v", frame_names=["0", "1"], frame_paths=[], height=4, width=5,
        expressions={"both": Expression("both", "x", ("a", "b")), "a": Expression("a", "y", ("a",)),
                     "none": Expression("none", "z", (), 2)},
        mask_loaders={"a": lambda t: a[t], "b": lambda t: b[t]})
    areas = gt_union_areas(sample)
    assert areas["both"].tolist() == [10, 1] and areas["a"].tolist() == [6, 0] and areas["none"].tolist() == [0, 0]
