"""VideoSeg-R1's hierarchical text-guided frame sampler (HTFS), inference only.

Per query, with ``T`` frames (paper, "Hierarchical Text-guided Frame Sampler"):

1. **Segment levels.** Show the frames of the current segment (all of them, or
   ``max_frames`` spread uniformly) and sample ``K`` interval answers
   ``[start, end]``; the valid ones are averaged (``start = round(mean starts)``,
   ``end = round(mean ends)``, half up) into the key segment ``[s, e]``, length
   ``T_key = e - s + 1``. While ``T_key > delta * T`` the question is asked again
   inside the key segment (at most ``max_levels`` levels).
2. **Frame level.** Inside the key segment, sample ``num_positions`` answers of the
   relative position ``p`` (percent) of the target frame; the ``top_m`` valid ones
   with the highest sequence log-prob (our reading of the paper's "top-M
   predicted values") are averaged into ``p_bar`` and
   ``keyframe = s + floor(T_key * p_bar)`` (clamped to ``e`` when ``p_bar = 1``).
3. **Global reference frames** (the paper's Section B, "adaptive global sampling",
   is not in the text we have; our reading): frames outside the key segment, one
   per ``reference_stride`` of them, at most ``max_reference_frames``, spread
   uniformly (``uniform_indices``); when the segment is the whole video, the
   candidates are all frames but the keyframe.

Documented fallbacks (counted in :attr:`stats` as ``fallback/<name>``):
``interval_default`` (no valid interval answer at a level: stop descending and keep
the current segment), ``no_progress`` (the averaged segment is not shorter than the
one asked about: stop there), ``max_levels`` (level bound reached above ``delta * T``),
``position_default`` (no valid position answer: ``p_bar = 0.5``, the segment's middle).
Every level and the frame level is one batched MLLM call over all active queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

from rl.eval.samplers.answers import MALFORMED, interval_prompt, parse_interval, parse_position, position_prompt
from rl.eval.samplers.base import FrameSampler, MLLMClient, SamplerQuery, SamplerResult
from rl.eval.samplers.frames import uniform_indices

__all__ = ["HTFSParams", "HierarchicalSampler", "average_interval", "keyframe_from_position", "exact_fraction",
           "reference_frames"]


@dataclass(frozen=True)
class HTFSParams:
    """HTFS constants (``eval.htfs_*``; the paper does not publish K, M, delta)."""

    num_intervals: int = 5
    delta: float = 0.25
    max_levels: int = 6
    num_positions: int = 5
    top_m: int = 3
    max_reference_frames: int = 4
    reference_stride: int = 16
    frame_size: tuple[int, int] = (448, 448)
    max_frames: int = 32
    temperature: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"HTFS delta must be in (0, 1), got {self.delta}")
        if min(self.num_intervals, self.num_positions, self.top_m, self.max_levels) < 1:
            raise ValueError("HTFS num_intervals, num_positions, top_m and max_levels must be >= 1")
        if self.reference_stride < 1 or self.max_reference_frames < 0:
            raise ValueError("HTFS reference_stride must be >= 1 and max_reference_frames >= 0")


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def average_interval(intervals: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Mean of ``K`` inclusive intervals, bounds rounded half up. Example: (2,9),(4,10) -> (3, 10)."""
    if not intervals:
        raise ValueError("average_interval needs at least one interval")
    start = _round_half_up(sum(s for s, _ in intervals) / len(intervals))
    end = _round_half_up(sum(e for _, e in intervals) / len(intervals))
    return start, max(start, end)


def exact_fraction(value: float | Fraction) -> Fraction:
    """``value`` as the exact fraction it was written as: a position answer is a percentage with a
    few decimals, so the float's nearest fraction with a denominator up to 10^6 (``0.58`` -> 29/50)."""
    return value if isinstance(value, Fraction) else Fraction(value).limit_denominator(10 ** 6)


def keyframe_from_position(segment: tuple[int, int], p_bar: float | Fraction) -> int:
    """``start + floor(T_key * p_bar)`` with ``T_key = end - start + 1``, clamped to ``end``.

    Computed in exact arithmetic: in floating point ``50 * 0.58`` is ``28.999...`` and the floor
    would land one frame early whenever the product is an exact integer.
    """
    start, end = segment
    t_key = end - start + 1
    return min(start + math.floor(t_key * exact_fraction(p_bar)), end)


def reference_frames(num_frames: int, segment: tuple[int, int], keyframe: int, stride: int, max_count: int) -> list[int]:
    """Global reference frames: ``min(max_count, ceil(len(candidates) / stride))`` candidates spread uniformly.

    Candidates are the frames outside ``segment``; when there are none, every frame but the keyframe.
    """
    start, end = segment
    candidates = [t for t in range(num_frames) if t < start or t > end]
    if not candidates:
        candidates = [t for t in range(num_frames) if t != keyframe]
    count = min(max_count, math.ceil(len(candidates) / stride)) if candidates else 0
    if count <= 0:
        return []
    return [candidates[i] for i in uniform_indices(0, len(candidates) - 1, count)]


@dataclass
class _State:
    query: SamplerQuery
    segment: tuple[int, int]
    levels: int = 0
    active: bool = True


class HierarchicalSampler(FrameSampler):
    name = "hierarchical"
    needs_mllm = True

    def __init__(self, client: MLLMClient, params: HTFSParams = HTFSParams()):
        super().__init__()
        self.client = client
        self.params = params

    # ------------------------------------------------------------------ prompts
    def _record(self, query: SamplerQuery, segment: tuple[int, int], level: bool) -> dict:
        lo, hi = segment
        shown = uniform_indices(lo, hi, self.params.max_frames)
        build = interval_prompt if level else position_prompt
        text = build(query.text, shown, query.num_frames, lo, hi)
        return {"prompt": text, "images": query.video.image_paths(shown, self.params.frame_size)}

    # ------------------------------------------------------------------ stages
    def _segment_levels(self, states: list[_State], results: list[SamplerResult]) -> None:
        p = self.params
        for state in states:
            state.active = state.query.num_frames > 1
        while True:
            active = [i for i, s in enumerate(states) if s.active]
            if not active:
                return
            answers = self.client.ask([self._record(states[i].query, states[i].segment, True) for i in active],
                                      n=p.num_intervals, temperature=p.temperature)
            for i, group in zip(active, answers):
                state, result = states[i], results[i]
                lo, hi = state.segment
                valid = []
                for answer in group:
                    parsed = parse_interval(answer.text, lo, hi)
                    self.count("interval", parsed.status)
                    if parsed.status != MALFORMED:
                        valid.append(parsed.value)
                state.levels += 1
                if not valid:
                    self.fallback(result, "interval_default")
                    state.active = False
                    continue
                new = average_interval(valid)
                old_len, new_len = hi - lo + 1, new[1] - new[0] + 1
                if new_len >= old_len:
                    self.fallback(result, "no_progress")
                    state.segment, state.active = new, False
                    continue
                state.segment = new
                if new_len <= p.delta * state.query.num_frames:
                    state.active = False
                elif state.levels >= p.max_levels:
                    self.fallback(result, "max_levels")
                    state.active = False

    def _frame_level(self, states: list[_State], results: list[SamplerResult]) -> None:
        p = self.params
        asked = [i for i, s in enumerate(states) if s.query.num_frames > 1]
        answers = self.client.ask([self._record(states[i].query, states[i].segment, False) for i in asked],
                                  n=p.num_positions, temperature=p.temperature)
        p_bars: dict[int, Fraction] = {}
        for i, group in zip(asked, answers):
            scored = []
            for answer in group:
                parsed = parse_position(answer.text)
                self.count("position", parsed.status)
                if parsed.status != MALFORMED:
                    scored.append((answer.logprob, parsed.value))
            if scored:
                scored.sort(key=lambda item: item[0], reverse=True)   # stable: ties keep answer order
                top = [exact_fraction(value) for _, value in scored[: p.top_m]]
                p_bars[i] = sum(top, Fraction(0)) / len(top)
            else:
                self.fallback(results[i], "position_default")
                p_bars[i] = Fraction(1, 2)
        for i, state in enumerate(states):
            result = results[i]
            result.segment = state.segment
            result.levels = state.levels
            result.keyframe = keyframe_from_position(state.segment, p_bars.get(i, Fraction(0)))
            result.reference_frames = reference_frames(
                state.query.num_frames, state.segment, result.keyframe, p.reference_stride, p.max_reference_frames)

    def select(self, queries: Sequence[SamplerQuery]) -> list[SamplerResult]:
        states = [_State(q, (0, q.num_frames - 1)) for q in queries]
        results = [SamplerResult(keyframe=0) for _ in queries]
        if not queries:
            return results
        self._segment_levels(states, results)
        self._frame_level(states, results)
        return results
