"""Frame-sampler interface, its request / result types and the MLLM client the samplers share.

A sampler receives the queries of many videos at once and answers each with a
keyframe (plus optional context: reference frames, a key segment, a video
description, Veason-R1 boxes). Samplers that ask the MLLM do so in rounds: each
round is **one** ``RolloutBackend.generate`` call holding the questions of every
query still active, so MLLM work is batched across videos.
"""

from __future__ import annotations

import abc
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from rl.eval.samplers.answers import LENIENT, MALFORMED
from rl.eval.samplers.frames import VideoFrames

__all__ = ["SamplerQuery", "SamplerResult", "FrameSampler", "Answer", "MLLMClient"]


@dataclass
class SamplerQuery:
    """One expression to find a keyframe for.

    video: the video's frames; exp_id / text: the expression; gt_areas: ``T`` GT union
    areas (pixels) per frame, or None when the split has no masks (only the ``oracle``
    sampler needs them).
    """

    video: VideoFrames
    exp_id: str
    text: str
    gt_areas: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        return self.video.num_frames


@dataclass
class SamplerResult:
    """A sampler's decision for one query.

    keyframe: frame index the policy grounds the target on.
    reference_frames: global context frames (VideoSeg-R1), sorted, keyframe excluded.
    segment: final key segment ``(start, end)`` inclusive (VideoSeg-R1).
    levels: interval levels asked (VideoSeg-R1).
    description: video description (RCoT-Seg VDG), passed to the grounding prompt.
    initial_keyframe / aks_rounds: first KFG choice and AKS evaluations run (RCoT-Seg).
    boxes: ``M x 4`` boxes at the original resolution from the sampler's own answer
    (Veason-R1), or None.
    fallbacks: names of the documented fallbacks applied to this query.
    """

    keyframe: int
    reference_frames: list[int] = field(default_factory=list)
    segment: Optional[tuple[int, int]] = None
    levels: int = 0
    description: Optional[str] = None
    initial_keyframe: Optional[int] = None
    aks_rounds: Optional[int] = None
    boxes: Optional[np.ndarray] = None
    fallbacks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    """One response: text and the sum of its tokens' log-probs (``-inf`` when unavailable)."""

    text: str
    logprob: float


class MLLMClient:
    """Asks batches of questions through a :class:`~rl.rollout.base.RolloutBackend`.

    Args:
        backend: any rollout backend (``generate(prompts, SamplingParams)``).
        max_tokens: response budget; temperature: default sampling temperature;
        seed: base seed (call ``k`` uses ``seed + k``, so a run is reproducible);
        stop: stop strings (kept in the response).

    Counters: :attr:`calls` (generate calls), :attr:`prompts`, :attr:`responses`, :attr:`seconds`.
    """

    def __init__(self, backend: Any, max_tokens: int = 256, temperature: float = 0.7, seed: int = 0,
                 stop: Sequence[str] = ("</answer>",)):
        self.backend = backend
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.stop = list(stop)
        self.calls = 0
        self.prompts = 0
        self.responses = 0
        self.seconds = 0.0

    def ask(self, prompts: Sequence[Mapping[str, Any]], n: int = 1, temperature: Optional[float] = None,
            max_tokens: Optional[int] = None) -> list[list[Answer]]:
        """``n`` answers per prompt record ``{"prompt": str, "images": [path, ...]}``, in prompt order."""
        from rl.rollout.base import SamplingParams

        if not prompts:
            return []
        params = SamplingParams(
            n=n, temperature=self.temperature if temperature is None else temperature,
            max_tokens=max_tokens or self.max_tokens, stop=list(self.stop), seed=self.seed + self.calls,
            logprobs=True,
        )
        start = time.perf_counter()
        out = self.backend.generate([dict(p) for p in prompts], params)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.prompts += len(prompts)
        self.responses += len(out.responses)
        if len(out.responses) != len(prompts) * n:
            raise RuntimeError(f"rollout backend returned {len(out.responses)} responses for {len(prompts)} x {n}")
        grouped: list[list[Answer]] = [[] for _ in prompts]
        for i, resp in enumerate(out.responses):
            lp = float(np.sum(resp.logprobs)) if resp.logprobs else float("-inf")
            grouped[i // n].append(Answer(resp.text, lp))
        return grouped


class FrameSampler(abc.ABC):
    """Chooses a keyframe per query. :attr:`stats` counts answers, lenient / malformed ones and fallbacks."""

    name: str = ""
    #: Whether the sampler asks the MLLM (needs an :class:`MLLMClient`).
    needs_mllm: bool = False
    #: Whether the sampler reads ground truth (``SamplerQuery.gt_areas``).
    needs_gt: bool = False

    def __init__(self) -> None:
        self.stats: Counter = Counter()

    @abc.abstractmethod
    def select(self, queries: Sequence[SamplerQuery]) -> list[SamplerResult]:
        """One result per query, in order."""

    def count(self, kind: str, status: str) -> None:
        """Count one parsed answer of question ``kind`` (``kind/answers``, ``kind/lenient``, ``kind/malformed``)."""
        self.stats[f"{kind}/answers"] += 1
        if status in (LENIENT, MALFORMED):
            self.stats[f"{kind}/{status}"] += 1

    def fallback(self, result_or_list: Any, name: str) -> None:
        """Record that the documented fallback ``name`` was applied."""
        self.stats[f"fallback/{name}"] += 1
        if isinstance(result_or_list, SamplerResult):
            result_or_list.fallbacks.append(name)
        elif isinstance(result_or_list, list):
            result_or_list.append(name)
