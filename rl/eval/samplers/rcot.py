"""RCoT-Seg's temporal video reasoning: VDG, KFG and the agentic keyframe selection (AKS) loop.

Per query (paper Sec. 3.2, Eq. 1-3, Appendix A.3 and C):

1. **VDG**: the video (frames at ``frame_size``, 448x448 in the paper) -> a description
   ``x_vid``; asked once per video (it does not depend on the query).
2. **KFG**: video + query -> candidate keyframe ``z_sel``.
3. **AKS** (at most ``max_rounds`` = lambda evaluations, 5 in the paper): the candidate
   keyframe (at the grounding input size, 840x840 in the paper) + description + query
   (``data.prompts.aks_prompt``) -> ``A`` keep / ``B`` reselect. On ``B`` before the last
   round the model re-selects (Eq. 3) with the rejected frames named in the prompt;
   after the ``max_rounds``-th ``B`` the last candidate is kept. ``aks_rounds`` = AKS
   evaluations run (0 when ``max_rounds`` = 0, i.e. AKS disabled).
   The **light** variant (Appendix C) shows ``light_frames`` (16) uniformly sampled
   frames in the re-selection questions instead of the whole video.

"The whole video" is every frame, or ``max_frames`` spread uniformly when set (a
memory bound). Documented fallbacks (``fallback/<name>`` in :attr:`stats`):
``description_empty`` (no usable description: none is passed on),
``keyframe_default`` (unusable KFG answer: the first frame, RCoT-Seg's no-KFG choice),
``aks_default_keep`` (unusable AKS answer: keep the frame, which ends the loop),
``reselect_default`` (unusable re-selection answer: the first frame not yet rejected),
``reselect_repeat`` (a rejected frame re-selected: the nearest frame not yet
rejected, earlier first on ties). Each stage / round is one batched MLLM call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from data.prompts import aks_prompt
from rl.eval.samplers.answers import (
    MALFORMED,
    description_prompt,
    keyframe_prompt,
    parse_aks,
    parse_description,
    parse_keyframe,
)
from rl.eval.samplers.base import FrameSampler, MLLMClient, SamplerQuery, SamplerResult
from rl.eval.samplers.frames import uniform_indices

__all__ = ["RcotParams", "RcotSampler", "next_unrejected"]


@dataclass(frozen=True)
class RcotParams:
    """RCoT-Seg sampler settings (``eval.aks_max_rounds``, ``eval.rcot_light_frames``, ...)."""

    max_rounds: int = 5
    light: bool = False
    light_frames: int = 16
    frame_size: tuple[int, int] = (448, 448)
    max_frames: int = 32
    keyframe_size: tuple[int, int] = (840, 840)
    temperature: Optional[float] = 0.0

    def __post_init__(self) -> None:
        if self.max_rounds < 0 or self.light_frames < 1:
            raise ValueError(f"AKS max_rounds must be >= 0 and light_frames >= 1, got {self.max_rounds}, {self.light_frames}")


def next_unrejected(num_frames: int, rejected: Sequence[int], wanted: Optional[int] = None) -> int:
    """The frame not in ``rejected`` nearest to ``wanted`` (earlier first on ties); without
    ``wanted`` the first such frame. All frames rejected: ``wanted`` (or 0)."""
    taken = set(rejected)
    free = [t for t in range(num_frames) if t not in taken]
    if not free:
        return 0 if wanted is None else wanted
    if wanted is None:
        return free[0]
    return min(free, key=lambda t: (abs(t - wanted), t))


@dataclass
class _State:
    query: SamplerQuery
    description: Optional[str] = None
    candidate: int = 0
    rejected: list[int] = field(default_factory=list)
    rounds: int = 0
    done: bool = False


class RcotSampler(FrameSampler):
    name = "rcot"
    needs_mllm = True

    def __init__(self, client: MLLMClient, params: RcotParams = RcotParams()):
        super().__init__()
        self.client = client
        self.params = params
        if params.light:
            self.name = "rcot_light"

    def _video_indices(self, num_frames: int, light: bool) -> list[int]:
        k = self.params.light_frames if light else self.params.max_frames
        return uniform_indices(0, num_frames - 1, k)

    def _ask(self, records: list[dict]) -> list[str]:
        return [group[0].text for group in self.client.ask(records, n=1, temperature=self.params.temperature)]

    # ------------------------------------------------------------------ stages
    def _describe(self, states: list[_State], results: list[SamplerResult]) -> None:
        videos: dict[str, list[int]] = {}
        for i, s in enumerate(states):
            videos.setdefault(s.query.video.sample.video_id, []).append(i)
        firsts = [members[0] for members in videos.values()]
        records = []
        for i in firsts:
            video = states[i].query.video
            shown = self._video_indices(video.num_frames, light=False)
            records.append({"prompt": description_prompt(shown, video.num_frames),
                            "images": video.image_paths(shown, self.params.frame_size)})
        for first, text in zip(firsts, self._ask(records)):
            parsed = parse_description(text)
            self.count("description", parsed.status)
            for i in videos[states[first].query.video.sample.video_id]:
                if parsed.status == MALFORMED:
                    self.fallback(results[i], "description_empty")
                states[i].description = parsed.value
                results[i].description = parsed.value

    def _keyframe_records(self, states: Sequence[_State], reselect: bool) -> list[dict]:
        records = []
        for s in states:
            video = s.query.video
            shown = self._video_indices(video.num_frames, light=reselect and self.params.light)
            text = keyframe_prompt(s.query.text, shown, video.num_frames, rejected=s.rejected if reselect else (),
                                   description=s.description if reselect else None)
            records.append({"prompt": text, "images": video.image_paths(shown, self.params.frame_size)})
        return records

    def _generate_keyframes(self, states: list[_State], results: list[SamplerResult]) -> None:
        for s, result, text in zip(states, results, self._ask(self._keyframe_records(states, reselect=False))):
            parsed = parse_keyframe(text, s.query.num_frames)
            self.count("keyframe", parsed.status)
            if parsed.status == MALFORMED:
                self.fallback(result, "keyframe_default")
                s.candidate = 0
            else:
                s.candidate = parsed.value
            result.initial_keyframe = s.candidate

    def _aks_round(self, states: list[_State], results: list[SamplerResult], active: list[int]) -> None:
        records = []
        for i in active:
            s = states[i]
            records.append({"prompt": aks_prompt(s.query.text, s.description),
                            "images": [s.query.video.image_path(s.candidate, self.params.keyframe_size)]})
        reselect = []
        for i, text in zip(active, self._ask(records)):
            s = states[i]
            s.rounds += 1
            parsed = parse_aks(text)
            self.count("aks", parsed.status)
            if parsed.status == MALFORMED:
                self.fallback(results[i], "aks_default_keep")
                s.done = True
            elif parsed.value == "A":
                s.done = True
            elif s.rounds >= self.params.max_rounds:
                self.stats["aks/exhausted"] += 1
                s.done = True
            else:
                s.rejected.append(s.candidate)
                reselect.append(i)
        if not reselect:
            return
        texts = self._ask(self._keyframe_records([states[i] for i in reselect], reselect=True))
        for i, text in zip(reselect, texts):
            s = states[i]
            parsed = parse_keyframe(text, s.query.num_frames)
            self.count("reselect", parsed.status)
            if parsed.status == MALFORMED:
                self.fallback(results[i], "reselect_default")
                s.candidate = next_unrejected(s.query.num_frames, s.rejected)
            elif parsed.value in s.rejected:
                self.fallback(results[i], "reselect_repeat")
                s.candidate = next_unrejected(s.query.num_frames, s.rejected, parsed.value)
            else:
                s.candidate = parsed.value

    def select(self, queries: Sequence[SamplerQuery]) -> list[SamplerResult]:
        states = [_State(q) for q in queries]
        results = [SamplerResult(keyframe=0) for _ in queries]
        if not queries:
            return results
        self._describe(states, results)
        self._generate_keyframes(states, results)
        while True:
            active = [i for i, s in enumerate(states) if not s.done and s.rounds < self.params.max_rounds]
            if not active:
                break
            self._aks_round(states, results, active)
        for s, result in zip(states, results):
            result.keyframe = s.candidate
            result.aks_rounds = s.rounds
        return results
