"""Sample builders (data.samples) on a hand-built VideoSample: GT equals the cue functions on resized masks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from data import cues, prompts
from data import rle as rle_codec
from data import samples as S
from data.io import CorruptFileError, read_rgb, write_png
from data.types import NO_TARGET, REFERRING, Expression, VideoSample

T, H, W = 5, 30, 40
INPUT = (20, 60)  # [W, H]: x shrinks by 2, y grows by 2 (checks the W/H order everywhere)
THINK_ANSWER = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.S)


def _object_masks() -> dict[str, np.ndarray]:
    m1 = np.zeros((T, H, W), bool)
    for t in range(4):  # absent on frame 4
        m1[t, 5:12 + 3 * t, 4 + 2 * t: 16 + 3 * t] = True
    m2 = np.zeros((T, H, W), bool)
    m2[:3, 20:26, 28:36] = True
    m2[1, 18:28, 26:38] = True  # frame 1 larger
    return {"1": m1, "2": m2}


def make_video(tmp_path: Path, masks: dict[str, np.ndarray] | None = None) -> VideoSample:
    masks = _object_masks() if masks is None else masks
    rng = np.random.default_rng(0)
    paths = []
    for t in range(T):
        path = tmp_path / "frames" / f"{t:05d}.png"
        write_png(path, rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
        paths.append(path)
    exps = {
        "0": Expression("0", "the first box.", ("1",), REFERRING),
        "1": Expression("1", "both things", ("1", "2"), REFERRING),
        "2": Expression("2", "the purple star", (), NO_TARGET),
    }
    loaders = {k: (lambda t, a=v: a[t].copy()) for k, v in masks.items()}
    return VideoSample("synthetic", "train", "vid_a", [f"{t:05d}" for t in range(T)], paths, H, W, exps, loaders)


def _union(masks: dict[str, np.ndarray], ids) -> np.ndarray:
    out = np.zeros((T, H, W), bool)
    for i in ids:
        out |= masks[i]
    return out


def _answer_text(text: str) -> str:
    return re.search(r"<answer>\s*(.*?)\s*</answer>", text, re.S).group(1)


def _answer(text: str):
    return json.loads(_answer_text(text))


def _brute_l1(mask: np.ndarray, x: int, y: int) -> int:
    ys, xs = np.nonzero(mask)
    return int((np.abs(ys - y) + np.abs(xs - x)).min())


@pytest.fixture
def video(tmp_path):
    return make_video(tmp_path)


def _areas(video, exp_id):
    areas, failed = S.expression_areas(video)
    assert not failed
    return areas[exp_id]


# --------------------------------------------------------------------------- KTG


def test_expression_areas_are_union_areas(video):
    masks = _object_masks()
    areas, failed = S.expression_areas(video)
    assert failed == {}
    assert areas["0"].tolist() == masks["1"].reshape(T, -1).sum(1).tolist()
    assert areas["1"].tolist() == _union(masks, ["1", "2"]).reshape(T, -1).sum(1).tolist()
    assert areas["2"].tolist() == [0] * T


def test_ktg_record_ground_truth_equals_cues_on_resized_masks(video, tmp_path):
    masks = _object_masks()
    opts = S.SampleOptions(task="ktg", input_size=INPUT, seed=3)
    rec = S.build_ktg_record(video, "1", _areas(video, "1"), S.FrameImageWriter(tmp_path / "img"), opts)
    union = _union(masks, ["1", "2"])
    key = int(np.argmax(union.reshape(T, -1).sum(1)))
    gt = rec["ground_truth"]
    assert gt["keyframe"] == key and rec["frame_indices"] == [key]
    resized = [cues.resize_mask(masks[o][key], INPUT) for o in ("1", "2")]
    resized = [m for m in resized if m.any()]
    assert [o["bbox_2d"] for o in gt["objects"]] == [cues.mask_to_box(m) for m in resized]
    assert [o["point_2d"] for o in gt["objects"]] == [cues.inscribed_circle_point(m) for m in resized]
    ru = np.logical_or.reduce(resized)
    for obj, m in zip(gt["objects"], resized):
        x, y = obj["point_2d"]
        assert m[y, x]
        nx, ny = obj["neg_point_2d"]
        assert not ru[ny, nx] and 0 < _brute_l1(m, nx, ny) <= opts.tau_neg
    for rle, m in zip(gt["masks"], resized):
        assert np.array_equal(rle_codec.decode(rle), m)
    # resized model-input image on disk, named in images and image_path
    assert gt["image_path"] == rec["images"][0] and Path(rec["images"][0]).is_absolute()
    assert read_rgb(rec["images"][0]).shape == (INPUT[1], INPUT[0], 3)
    assert rec["orig_size"] == [W, H] and rec["input_size"] == list(INPUT) == gt["input_size"]
    # SFT target: think/answer format, answer == GT cues exactly
    assert THINK_ANSWER.fullmatch(rec["sft_target"])
    assert _answer(rec["sft_target"]) == [{"bbox_2d": o["bbox_2d"], "point_2d": o["point_2d"]} for o in gt["objects"]]
    assert "<image>" not in rec["prompt"] and "both things" in rec["prompt"]
    assert rec["reward"] == "visionreasoner" and rec["task"] == "ktg"
    assert json.loads(json.dumps(rec)) == rec


def test_ktg_negative_point_variant(video, tmp_path):
    opts = S.SampleOptions(task="ktg", input_size=INPUT, reward="videoseg_r1")
    rec = S.build_ktg_record(video, "0", _areas(video, "0"), S.FrameImageWriter(tmp_path / "img"), opts)
    ans = _answer(rec["sft_target"])
    assert ans == [{k: o[k] for k in ("bbox_2d", "point_2d", "neg_point_2d")} for o in rec["ground_truth"]["objects"]]
    assert "neg_point_2d" in rec["prompt"] and rec["reward"] == "videoseg_r1"


def test_ktg_no_target(video, tmp_path):
    opts = S.SampleOptions(task="ktg", input_size=INPUT)
    rec = S.build_ktg_record(video, "2", _areas(video, "2"), S.FrameImageWriter(tmp_path / "img"), opts)
    assert rec["ground_truth"]["objects"] == [] and rec["ground_truth"]["masks"] == []
    assert _answer(rec["sft_target"]) == [] and rec["type_id"] == NO_TARGET
    assert 0 <= rec["frame_indices"][0] < T


def test_ktg_scaled_cues_follow_the_rounding_rule(video, tmp_path):
    masks = _object_masks()
    opts = S.SampleOptions(task="ktg", input_size=INPUT, cues_from="scaled")
    rec = S.build_ktg_record(video, "0", _areas(video, "0"), S.FrameImageWriter(tmp_path / "img"), opts)
    key = rec["ground_truth"]["keyframe"]
    (obj,) = rec["ground_truth"]["objects"]
    assert obj["bbox_2d"] == cues.scale_box(cues.mask_to_box(masks["1"][key]), [W, H], INPUT)
    assert obj["point_2d"] == cues.scale_point(cues.inscribed_circle_point(masks["1"][key]), [W, H], INPUT)


def test_records_are_deterministic(video, tmp_path):
    opts = S.SampleOptions(task="ktg", input_size=INPUT, seed=11)
    a = S.build_ktg_record(video, "2", _areas(video, "2"), S.FrameImageWriter(tmp_path / "a"), opts)
    b = S.build_ktg_record(video, "2", _areas(video, "2"), S.FrameImageWriter(tmp_path / "a"), opts)
    assert a == b
    c = S.build_ktg_record(video, "1", _areas(video, "1"), S.FrameImageWriter(tmp_path / "a"), opts)
    d = S.build_ktg_record(video, "1", _areas(video, "1"), S.FrameImageWriter(tmp_path / "a"), opts)
    assert c == d


def test_options_reject_reward_of_another_task():
    with pytest.raises(ValueError, match="does not fit task"):
        S.SampleOptions(task="aks", reward="visionreasoner")
    with pytest.raises(ValueError, match="cues_from"):
        S.SampleOptions(cues_from="exact")


# --------------------------------------------------------------------------- AKS


def test_aks_candidates_and_records(video, tmp_path):
    areas = _areas(video, "0")
    cands = S.aks_candidates(video, "0", areas, seed=0)
    assert [c.answer for c in cands] == ["A", "B"]
    assert cands[0].frame_index == int(np.argmax(areas)) and cands[0].target_area == int(areas.max())
    assert areas[cands[1].frame_index] == 0 and cands[1].frame_index == 4  # the only empty frame
    assert not cands[0].multi and S.aks_candidates(video, "1", _areas(video, "1"), 0)[0].multi
    assert S.aks_candidates(video, "2", _areas(video, "2"), 0) == []  # no target: no AKS sample
    opts = S.SampleOptions(task="aks", input_size=INPUT)
    writer = S.FrameImageWriter(tmp_path / "img")
    rec_a = S.build_aks_record(video, cands[0], writer, opts)
    rec_b = S.build_aks_record(video, cands[1], writer, opts)
    assert rec_a["ground_truth"]["answer"] == "A" and _answer_text(rec_a["sft_target"]) == "A"
    assert rec_b["ground_truth"]["answer"] == "B" and rec_b["frame_indices"] == [4]
    assert rec_a["id"] != rec_b["id"] and rec_a["reward"] == "rcot_aks"
    assert THINK_ANSWER.fullmatch(rec_b["sft_target"]) and "A. " in rec_a["prompt"] and "B. " in rec_a["prompt"]


def _cand(i: int, answer: str, multi: bool) -> S.AksCandidate:
    return S.AksCandidate(f"v{i}", "0", 0, answer, multi)


@pytest.mark.parametrize(
    "a_single,a_multi,b_single,b_multi,expect_single,expect_multi",
    [
        (30, 4, 30, 10, 12, 4),    # multis limit: 4 multis -> 3*4 = 12 singles
        (6, 10, 8, 10, 6, 2),      # singles limit: 6 singles -> round(6/3) = 2 multis
        (5, 0, 9, 3, 5, 0),        # no multi A at all: singles alone
        (10, 2, 3, 2, 3, 1),       # B singles limit (3) -> round(3/3) = 1 multi
    ],
)
def test_balance_aks_is_one_to_one_with_single_multi_ratio(a_single, a_multi, b_single, b_multi,
                                                           expect_single, expect_multi):
    cands = ([_cand(i, "A", False) for i in range(a_single)] + [_cand(100 + i, "A", True) for i in range(a_multi)]
             + [_cand(200 + i, "B", False) for i in range(b_single)]
             + [_cand(300 + i, "B", True) for i in range(b_multi)])
    a, b = S.balance_aks(cands, 3.0, seed=0)
    assert len(a) == len(b) == expect_single + expect_multi
    for chosen, answer in ((a, "A"), (b, "B")):
        assert all(c.answer == answer for c in chosen)
        assert sum(not c.multi for c in chosen) == expect_single
        assert sum(c.multi for c in chosen) == expect_multi
        assert len(set(chosen)) == len(chosen)
    assert S.balance_aks(cands, 3.0, seed=0) == (a, b)


# ------------------------------------------------------------------------ Veason


def test_sample_veason_frames_hand_example_and_invariants():
    # T=8, n=6: segments [0,1) [1,2) [2,4) [4,5) [5,6) [6,8); anchor 3 sits at offset 1/2 of [2,4)
    assert S.sample_veason_frames(8, 3, 6) == [0, 1, 3, 4, 5, 7]
    assert S.sample_veason_frames(4, 2, 6) == [0, 1, 2, 3]
    for t in range(1, 40):
        for n in (1, 2, 6):
            for anchor in range(t):
                frames = S.sample_veason_frames(t, anchor, n)
                assert anchor in frames and len(frames) == min(n, t)
                assert frames == sorted(set(frames)) and 0 <= frames[0] and frames[-1] < t


def test_veason_record(video, tmp_path):
    masks = _object_masks()
    opts = S.SampleOptions(task="veason", input_size=INPUT, num_sampled_frames=3, veason_keyframe_topk=2, seed=1)
    areas = _areas(video, "1")
    rec = S.build_veason_record(video, "1", areas, S.FrameImageWriter(tmp_path / "img"), opts)
    gt = rec["ground_truth"]
    frames, key = gt["frames"], gt["keyframe"]
    assert key in cues.top_k_frames(areas, 2) and key in frames and len(frames) == 3
    assert rec["frame_indices"] == frames and rec["images"] == gt["frame_paths"] and len(rec["images"]) == 3
    union = _union(masks, ["1", "2"])
    assert gt["frame_areas"] == [int(cues.resize_mask(union[t], INPUT).sum()) for t in frames]
    for t, boxes, rles, umask in zip(frames, gt["frame_boxes"], gt["masks_per_frame"], gt["frame_masks"]):
        resized = [cues.resize_mask(masks[o][t], INPUT) for o in ("1", "2")]
        assert boxes == [cues.mask_to_box(m) for m in resized if m.any()]
        assert all(np.array_equal(rle_codec.decode(r), m) for r, m in zip(rles, resized))
        assert np.array_equal(rle_codec.decode(umask), cues.resize_mask(union[t], INPUT))
    assert [o["bbox_2d"] for o in gt["objects"]] == gt["frame_boxes"][frames.index(key)]
    ans = _answer(rec["sft_target"])
    assert ans == {"keyframe_timestamp": key, "bbox_2d_list": [o["bbox_2d"] for o in gt["objects"]]}
    assert ", ".join(map(str, frames)) in rec["prompt"]
    with pytest.raises(S.SampleSkip, match="no target"):
        S.build_veason_record(video, "2", _areas(video, "2"), S.FrameImageWriter(tmp_path / "img"), opts)


# -------------------------------------------------------------------- bad data


def test_corrupt_frame_raises_skip_naming_the_file(video, tmp_path):
    areas = _areas(video, "0")
    key = int(np.argmax(areas))
    Path(video.frame_paths[key]).write_bytes(b"not a png")
    with pytest.raises(S.SampleSkip) as info:
        S.build_ktg_record(video, "0", areas, S.FrameImageWriter(tmp_path / "img"), S.SampleOptions(input_size=INPUT))
    assert info.value.reason == "frame_unreadable" and info.value.path == str(video.frame_paths[key])


def test_corrupt_mask_fails_only_its_expressions(video, tmp_path):
    def broken(t):
        if t == 2:
            raise CorruptFileError(tmp_path / "mask_dict.json", "anno_id 2 frame 2: broken RLE")
        return _object_masks()["2"][t]

    video.mask_loaders["2"] = broken
    areas, failed = S.expression_areas(video)
    assert set(failed) == {"1"} and set(areas) == {"0", "2"}
    assert failed["1"].reason == "mask_unreadable" and failed["1"].path == str(tmp_path / "mask_dict.json")
    video.mask_loaders["2"] = lambda t: np.zeros((H + 1, W), bool)
    _, failed = S.expression_areas(video)
    assert "mask shape" in str(failed["1"])


def test_prompts_have_distinct_sentences_and_compact_answers():
    objs = [{"bbox_2d": [1, 2, 30, 40], "point_2d": [10, 20]}, {"bbox_2d": [50, 50, 60, 70], "point_2d": [55, 60]}]
    target = prompts.ktg_sft_target("two things.", objs, [112, 112])
    sentences = [s.strip() for s in target.split(".") if s.strip()]
    assert len(sentences) == len(set(sentences))
    assert '"bbox_2d":[1,2,30,40]' in target and _answer(target) == objs
    assert prompts.describe_location([0, 0, 10, 10], [112, 112]) == "upper left"
    assert prompts.describe_location([50, 50, 60, 60], [112, 112]) == "center"
    assert prompts.describe_location([100, 100, 111, 111], [112, 112]) == "lower right"
    with pytest.raises(ValueError, match="AKS answer"):
        prompts.aks_sft_target("x", "C")
