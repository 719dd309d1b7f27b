"""Frame samplers (VideoSeg-R1 HTFS, RCoT-Seg VDG/KFG/AKS, Veason-R1, baselines) with a scripted MLLM.

:class:`ScriptedBackend` implements the rollout interface and answers from a script
(a legitimate test double for a model); expected keyframes, segments and reference
frames are computed by hand in the comments.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.io import write_png
from data.types import Expression, VideoSample
from rl.eval.samplers import MLLMClient, SamplerQuery, build_sampler
from rl.eval.samplers.answers import (
    LENIENT,
    MALFORMED,
    OK,
    parse_aks,
    parse_description,
    parse_interval,
    parse_keyframe,
    parse_position,
    parse_veason,
)
from rl.eval.samplers.baselines import FirstFrameSampler, OracleSampler
from rl.eval.samplers.frames import VideoFrames, uniform_indices
from rl.eval.samplers.hierarchical import (
    HierarchicalSampler,
    HTFSParams,
    average_interval,
    exact_fraction,
    keyframe_from_position,
    reference_frames,
)
from rl.eval.samplers.rcot import RcotParams, RcotSampler, next_unrejected
from rl.eval.samplers.veason import VeasonParams, VeasonSampler
from rl.rollout.base import GeneratedResponse, RolloutBackend, RolloutOutput

Script = Callable[[dict, int], "str | tuple[str, float]"]


class ScriptedBackend(RolloutBackend):
    """Rollout backend whose answers come from ``script(prompt_record, k) -> text | (text, logprob)``.

    Every ``generate`` call is recorded in :attr:`calls` (the list of prompt records).
    """

    def __init__(self, script: Script):
        self.script = script
        self.calls: list[list[dict]] = []
        self.params: list = []

    def generate(self, prompts, params):
        self.calls.append([dict(p) for p in prompts])
        self.params.append(params)
        responses = []
        for i, record in enumerate(prompts):
            for k in range(params.n):
                out = self.script(record, k)
                text, logprob = out if isinstance(out, tuple) else (out, -1.0)
                responses.append(GeneratedResponse(group_id=i, token_ids=[1], logprobs=[logprob], text=text,
                                                   finish_reason="stop"))
        return RolloutOutput(prompt_token_ids=[[1] for _ in prompts], responses=responses, n=params.n)

    def update_weights(self, named_tensors):
        return sum(1 for _ in named_tensors)

    def reset_caches(self):
        pass


def make_video(root: Path, video_id: str, num_frames: int, width: int = 32, height: int = 24) -> VideoSample:
    """A VideoSample of flat grey PNG frames (frame t has value 10 * t) without masks."""
    paths = []
    for t in range(num_frames):
        path = root / "frames" / video_id / f"{t:05d}.png"
        write_png(path, np.full((height, width, 3), (10 * t) % 256, np.uint8))
        paths.append(path)
    return VideoSample(dataset="test", split="valid", video_id=video_id, frame_names=[f"{t:05d}" for t in range(num_frames)],
                       frame_paths=paths, height=height, width=width,
                       expressions={"0": Expression("0", "the red circle", ("1",))}, has_masks=False)


def query(tmp_path: Path, video_id: str = "v0", num_frames: int = 40, text: str = "the red circle",
          areas: Sequence[int] | None = None, width: int = 32, height: int = 24) -> SamplerQuery:
    video = VideoFrames(make_video(tmp_path, video_id, num_frames, width, height), tmp_path / "work")
    return SamplerQuery(video, "0", text, None if areas is None else np.asarray(areas))


def client(script: Script) -> tuple[MLLMClient, ScriptedBackend]:
    backend = ScriptedBackend(script)
    return MLLMClient(backend, max_tokens=32, temperature=0.7), backend


def asked_range(prompt: str) -> tuple[int, int]:
    lo, hi = re.search(r"between frames (\d+) and (\d+)", prompt).groups()
    return int(lo), int(hi)


# ------------------------------------------------------------------------ answer parsing


def test_interval_parsing_reads_tagged_json_and_falls_back_leniently():
    assert parse_interval("<think>x</think><answer>[3, 9]</answer>", 0, 20) == ((3, 9), OK)
    assert parse_interval("<answer>[9, 3]</answer>", 0, 20) == ((3, 9), LENIENT)          # reversed: swapped
    assert parse_interval("<answer>from 4 to 7</answer>", 0, 20) == ((4, 7), LENIENT)    # numbers in text
    assert parse_interval("[2.4, 5.5]", 0, 20) == ((2, 6), LENIENT)                      # no tags, half up
    assert parse_interval("<answer>[-5, 30]</answer>", 0, 20) == ((0, 20), OK)           # clipped
    assert parse_interval("<answer>[30, 40]</answer>", 0, 20).status == MALFORMED       # outside the segment
    for bad in ("", "<answer>[1]</answer>", "<answer>none</answer>", None, b"\xff\xfe"):
        assert parse_interval(bad, 0, 20) == (None, MALFORMED)


def test_position_keyframe_aks_description_and_veason_parsing():
    assert parse_position("<answer>42</answer>") == (0.42, OK)
    assert parse_position("<answer>42.5%</answer>") == (0.425, OK)
    assert parse_position("<answer>about 80 percent</answer>") == (0.8, LENIENT)
    assert parse_position("<answer>150</answer>").status == MALFORMED
    assert parse_position("<answer>-3</answer>").status == MALFORMED
    assert parse_keyframe("<answer>7</answer>", 10) == (7, OK)
    assert parse_keyframe("<answer>frame 7.</answer>", 10) == (7, LENIENT)
    assert parse_keyframe("<answer>10</answer>", 10).status == MALFORMED
    assert parse_keyframe("<answer>2.5</answer>", 10).status == MALFORMED
    assert parse_aks("<think>ok</think><answer>A</answer>") == ("A", OK)
    assert parse_aks("<answer>B. No, select another.</answer>") == ("B", LENIENT)
    assert parse_aks("<answer>option b</answer>") == ("B", LENIENT)
    assert parse_aks("A").status == MALFORMED                 # untagged letters are not trusted
    assert parse_aks("<answer>C</answer>").status == MALFORMED
    assert parse_description("<answer> Two  shapes move. </answer>") == ("Two shapes move.", OK)
    assert parse_description("<answer></answer>").status == MALFORMED
    ts, boxes = parse_veason('<answer>{"keyframe_timestamp": 4, "bbox_2d_list": [[1,2,3,4], [1,2]]}</answer>', 8).value
    assert ts == 4 and boxes.tolist() == [[1, 2, 3, 4]]
    assert parse_veason('<answer>{"keyframe_timestamp": 8, "bbox_2d_list": []}</answer>', 8).status == MALFORMED
    assert parse_veason("<answer>[1, 2]</answer>", 8).status == MALFORMED


def test_uniform_indices_by_hand():
    assert uniform_indices(0, 9, 4) == [0, 2, 5, 7]       # floor(i * 10 / 4)
    assert uniform_indices(5, 7, 10) == [5, 6, 7]
    assert uniform_indices(3, 3, 1) == [3]
    assert uniform_indices(0, 4, 0) == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------ HTFS


def test_htfs_formulas_by_hand():
    # Means of the starts (2, 4) = 3 and of the ends (9, 10) = 9.5 -> 10 (half up).
    assert average_interval([(2, 9), (4, 10)]) == (3, 10)
    # Segment 16..21: T_key = 6; floor(6 * 0.5667) = 3 -> 19; p = 1 clamps to the end; p = 0 is the start.
    assert keyframe_from_position((16, 21), 0.5667) == 19
    assert keyframe_from_position((16, 21), 1.0) == 21
    assert keyframe_from_position((16, 21), 0.0) == 16
    # 34 frames outside 16..21 -> ceil(34 / 16) = 3 picks at candidate positions 0, 11, 22 -> frames 0, 11, 28.
    assert reference_frames(40, (16, 21), 19, stride=16, max_count=4) == [0, 11, 28]
    # Capped at 4: positions floor(i * 34 / 4) = 0, 8, 17, 25 -> frames 0, 8, 22 + 1, 22 + 9.
    assert reference_frames(40, (16, 21), 19, stride=1, max_count=4) == [0, 8, 23, 31]
    assert reference_frames(3, (0, 2), 1, stride=16, max_count=4) == [0]                   # whole video: not the keyframe



def test_keyframe_from_position_is_exact_on_integer_products():
    # Brute force against integer arithmetic: p_bar = mean of M answers of k_j percent (2 decimals).
    # In floating point, 50 * 0.58 = 28.999... and the floor landed one frame early.
    assert keyframe_from_position((0, 49), 0.58) == 29
    for t_key in range(1, 61):
        for hundredths in range(0, 10001, 7):                       # k / 100 percent, 0.00 .. 100.00
            p = parse_position(f"{hundredths / 100}").value
            expected = min((t_key * hundredths) // 10000, t_key - 1)
            assert keyframe_from_position((5, 5 + t_key - 1), p) == 5 + expected, (t_key, hundredths)
    answers = [parse_position(a).value for a in ("58", "57", "59")]  # mean exactly 58 %
    mean = sum(exact_fraction(v) for v in answers) / len(answers)
    assert mean == Fraction(29, 50) and keyframe_from_position((0, 49), mean) == 29

def htfs_script(record: dict, k: int):
    """Level 1 on 0..39: [10, 29] / [12, 31] -> key segment 11..30 (20 frames > 0.25 * 40 = 10, recurse);
    level 2 on 11..30: [15, 20] / [17, 22] -> 16..21 (6 frames <= 10, stop). Positions (percent, log-prob):
    50 (-1), 10 (-5), 90 (-2), 30 (-3), malformed -> top-3 by log-prob: 50, 90, 30 -> p = 0.5667."""
    prompt = record["prompt"]
    if "between frames" in prompt:
        lo, hi = asked_range(prompt)
        answers = {(0, 39): ["[10, 29]", "[12, 31]"], (11, 30): ["[15, 20]", "[17, 22]"]}[(lo, hi)]
        return f"<think>t</think><answer>{answers[k % 2]}</answer>"
    answers = [("50", -1.0), ("10", -5.0), ("90", -2.0), ("30", -3.0), ("soon", -0.5)]
    text, lp = answers[k]
    return f"<think>t</think><answer>{text}</answer>", lp


def test_htfs_recursion_converges_and_keyframe_follows_the_formula(tmp_path):
    mllm, backend = client(htfs_script)
    sampler = HierarchicalSampler(mllm, HTFSParams(num_intervals=2, delta=0.25, num_positions=5, top_m=3,
                                                   frame_size=(16, 16), max_frames=8))
    queries = [query(tmp_path, "v0"), query(tmp_path, "v1")]
    results = sampler.select(queries)
    for r in results:
        assert r.segment == (16, 21)
        assert r.segment[1] - r.segment[0] + 1 <= 0.25 * 40
        assert r.levels == 2
        assert r.keyframe == 19
        assert r.reference_frames == [0, 11, 28]
        assert r.fallbacks == []
    # Two interval levels + one position level, each one call holding both videos' questions.
    assert [len(c) for c in backend.calls] == [2, 2, 2]
    assert [p.n for p in backend.params] == [2, 2, 5]
    assert all(len(rec["images"]) == 8 and all(Path(p).is_file() for p in rec["images"]) for rec in backend.calls[0])
    assert sampler.stats["position/malformed"] == 2 and sampler.stats["interval/malformed"] == 0


def test_htfs_malformed_answers_fall_back_and_are_counted(tmp_path):
    mllm, _ = client(lambda record, k: "I am not sure.")
    sampler = HierarchicalSampler(mllm, HTFSParams(num_intervals=3, num_positions=4, frame_size=(16, 16)))
    (result,) = sampler.select([query(tmp_path, num_frames=10)])
    # No interval: the whole video stays the segment; no position: p = 0.5 -> 0 + floor(10 * 0.5) = 5.
    assert result.segment == (0, 9) and result.keyframe == 5
    assert result.fallbacks == ["interval_default", "position_default"]
    assert sampler.stats["interval/malformed"] == 3 and sampler.stats["position/malformed"] == 4
    assert sampler.stats["fallback/interval_default"] == 1 and sampler.stats["fallback/position_default"] == 1


def test_htfs_stops_when_the_model_does_not_narrow_the_segment(tmp_path):
    mllm, backend = client(lambda record, k: "<answer>[0, 39]</answer>" if "between frames" in record["prompt"]
                           else "<answer>25</answer>")
    sampler = HierarchicalSampler(mllm, HTFSParams(num_intervals=2, frame_size=(16, 16)))
    (result,) = sampler.select([query(tmp_path)])
    assert result.fallbacks == ["no_progress"] and result.levels == 1
    assert result.keyframe == 10                                # floor(40 * 0.25)
    assert len(backend.calls) == 2


@settings(max_examples=40, deadline=None)
@given(num_frames=st.integers(2, 300), delta=st.floats(0.05, 0.95), shrink=st.floats(0.1, 0.9))
def test_htfs_recursion_ends_below_delta_or_records_why(tmp_path_factory, num_frames, delta, shrink):
    """A model keeping the first ``shrink`` part of every segment asked about."""

    def script(record, k):
        if "between frames" in record["prompt"]:
            lo, hi = asked_range(record["prompt"])
            return f"<answer>[{lo}, {lo + int((hi - lo) * shrink)}]</answer>"
        return "<answer>50</answer>"

    mllm, _ = client(script)
    params = HTFSParams(num_intervals=1, num_positions=1, delta=delta, max_levels=50, frame_size=(8, 8), max_frames=4)
    frames = VideoFrames(make_video(tmp_path_factory.mktemp("v"), "v", num_frames, 8, 8), tmp_path_factory.mktemp("w"))
    (result,) = HierarchicalSampler(mllm, params).select([SamplerQuery(frames, "0", "q")])
    start, end = result.segment
    assert 0 <= start <= result.keyframe <= end < num_frames
    assert end - start + 1 <= delta * num_frames or set(result.fallbacks) & {"no_progress", "max_levels"}


# ------------------------------------------------------------------------ RCoT-Seg


def rcot_script(aks_answers: Sequence[str], kfg: str = "3", reselect: Callable[[int], str] = lambda r: str(10 + r),
                per_frame: bool = False):
    """KFG answers ``kfg``; the r-th AKS question gets ``aks_answers[r]`` (``per_frame``: B for frame ``kfg``,
    else A); the r-th re-selection question gets ``reselect(r)``."""
    state = {"aks": 0, "reselect": 0}

    def script(record, k):
        prompt = record["prompt"]
        if "Describe the video" in prompt:
            return "<think>t</think><answer>Shapes move to the right.</answer>"
        if "Is this frame a good keyframe" in prompt:
            answer = aks_answers[min(state["aks"], len(aks_answers) - 1)]
            if per_frame:
                answer = "B" if Path(record["images"][0]).name.startswith(f"{int(kfg):05d}_") else "A"
            state["aks"] += 1
            return f"<think>t</think><answer>{answer}</answer>"
        if "were judged unsuitable" in prompt:
            state["reselect"] += 1
            return f"<answer>{reselect(state['reselect'])}</answer>"
        return f"<answer>{kfg}</answer>"

    return script


def rcot(tmp_path, script, **params) -> tuple[RcotSampler, ScriptedBackend]:
    mllm, backend = client(script)
    defaults = dict(frame_size=(16, 16), keyframe_size=(20, 20), max_frames=32)
    return RcotSampler(mllm, RcotParams(**{**defaults, **params})), backend


def test_aks_stops_at_the_first_A(tmp_path):
    sampler, backend = rcot(tmp_path, rcot_script(["B", "B", "A"]))
    (result,) = sampler.select([query(tmp_path)])
    # KFG 3 -> B -> reselect 11 -> B -> reselect 12 -> A: three AKS evaluations, keyframe 12.
    assert result.initial_keyframe == 3 and result.keyframe == 12 and result.aks_rounds == 3
    assert result.description == "Shapes move to the right."
    reselect_prompts = [c[0]["prompt"] for c in backend.calls if "unsuitable" in c[0]["prompt"]]
    assert len(reselect_prompts) == 2
    assert "Frames 3, 11 were judged unsuitable" in reselect_prompts[1]
    aks_calls = [c[0] for c in backend.calls if "good keyframe" in c[0]["prompt"]]
    assert [len(c["images"]) for c in aks_calls] == [1, 1, 1]
    assert "Shapes move to the right" in aks_calls[0]["prompt"]


def test_aks_runs_at_most_lambda_rounds_and_keeps_the_last_candidate(tmp_path):
    sampler, backend = rcot(tmp_path, rcot_script(["B"]), max_rounds=5)
    (result,) = sampler.select([query(tmp_path)])
    # 5 evaluations, 4 re-selections (11, 12, 13, 14): the 5th B keeps 14.
    assert result.aks_rounds == 5 and result.keyframe == 14
    assert sum("good keyframe" in c[0]["prompt"] for c in backend.calls) == 5
    assert sum("unsuitable" in c[0]["prompt"] for c in backend.calls) == 4
    assert sampler.stats["aks/exhausted"] == 1


def test_aks_disabled_with_lambda_zero(tmp_path):
    sampler, backend = rcot(tmp_path, rcot_script(["B"]), max_rounds=0)
    (result,) = sampler.select([query(tmp_path)])
    assert result.aks_rounds == 0 and result.keyframe == 3
    assert not any("good keyframe" in c[0]["prompt"] for c in backend.calls)


def test_rcot_malformed_answers_fall_back_and_are_counted(tmp_path):
    def script(record, k):
        return "<think>hmm</think>" if "good keyframe" not in record["prompt"] else "<answer>maybe</answer>"

    sampler, _ = rcot(tmp_path, script)
    (result,) = sampler.select([query(tmp_path)])
    # Description unusable -> none; KFG unusable -> frame 0; AKS unusable -> keep (one round).
    assert result.description is None and result.keyframe == 0 and result.aks_rounds == 1
    assert result.fallbacks == ["description_empty", "keyframe_default", "aks_default_keep"]
    assert sampler.stats["aks/malformed"] == 1 and sampler.stats["keyframe/malformed"] == 1


def test_reselecting_a_rejected_frame_moves_to_the_nearest_free_one(tmp_path):
    sampler, _ = rcot(tmp_path, rcot_script(["B", "A"], kfg="3", reselect=lambda r: "3"))
    (result,) = sampler.select([query(tmp_path)])
    assert result.keyframe == 2                            # 3 rejected: 2 and 4 tie, earlier first
    assert result.fallbacks == ["reselect_repeat"]
    assert next_unrejected(5, [0, 1]) == 2 and next_unrejected(3, [0, 1, 2], 1) == 1


def test_rcot_light_reselects_on_16_uniform_frames_and_describes_each_video_once(tmp_path):
    sampler, backend = rcot(tmp_path, rcot_script(["A"], per_frame=True), light=True, light_frames=16, max_frames=32)
    q0, q1 = query(tmp_path, "v0"), query(tmp_path, "v1")
    q0b = SamplerQuery(q0.video, "1", "the blue square")
    results = sampler.select([q0, q0b, q1])
    assert [r.aks_rounds for r in results] == [2, 2, 2]
    describe = [c for c in backend.calls if "Describe the video" in c[0]["prompt"]]
    assert len(describe) == 1 and len(describe[0]) == 2      # one question per video, in one call
    kfg = [c for c in backend.calls if "Select the keyframe" in c[0]["prompt"] and "unsuitable" not in c[0]["prompt"]]
    reselect = [c for c in backend.calls if "unsuitable" in c[0]["prompt"]]
    assert len(kfg[0][0]["images"]) == 32 and len(reselect[0][0]["images"]) == 16
    assert len(reselect) == 1 and len(reselect[0]) == 3       # batched over the three queries


# ------------------------------------------------------------------------ Veason-R1 and baselines


def test_veason_keyframe_and_boxes_back_to_the_original_size(tmp_path):
    answer = '<think>t</think><answer>{"keyframe_timestamp": 10, "bbox_2d_list": [[56, 112, 280, 448]]}</answer>'
    mllm, backend = client(lambda record, k: answer)
    sampler = VeasonSampler(mllm, VeasonParams(num_frames=4, input_size=(560, 560)))
    (result,) = sampler.select([query(tmp_path, num_frames=40, width=280, height=140)])
    # Shown frames: first of each quarter -> 0, 10, 20, 30; boxes: x * 280/560, y * 140/560.
    assert "timestamps 0, 10, 20, 30" in backend.calls[0][0]["prompt"]
    assert result.keyframe == 10
    assert result.boxes.tolist() == [[28, 28, 140, 112]]


def test_veason_snaps_unshown_timestamps_and_falls_back_on_garbage(tmp_path):
    answers = iter(['<answer>{"keyframe_timestamp": 16, "bbox_2d_list": []}</answer>', "garbage"])
    mllm, _ = client(lambda record, k: next(answers))
    sampler = VeasonSampler(mllm, VeasonParams(num_frames=4, input_size=(32, 24)))
    snapped, garbage = sampler.select([query(tmp_path, "v0"), query(tmp_path, "v1")])
    assert snapped.keyframe == 20 and snapped.fallbacks == ["timestamp_snapped"] and snapped.boxes.shape == (0, 4)
    assert garbage.keyframe == 0 and garbage.boxes is None and garbage.fallbacks == ["keyframe_default"]
    assert sampler.stats["veason/malformed"] == 1


def test_baselines(tmp_path):
    q = query(tmp_path, num_frames=5, areas=[3, 9, 2, 9, 0])
    assert FirstFrameSampler().select([q])[0].keyframe == 0
    assert OracleSampler().select([q])[0].keyframe == 1            # largest area, first on ties
    with pytest.raises(ValueError, match="ground-truth"):
        OracleSampler().select([query(tmp_path, num_frames=5)])


def test_build_sampler_needs_a_client_for_mllm_samplers():
    with pytest.raises(ValueError, match="needs a policy"):
        build_sampler("hierarchical")
    with pytest.raises(ValueError, match="unknown sampler"):
        build_sampler("random")
    assert build_sampler("first_frame").name == "first_frame"
