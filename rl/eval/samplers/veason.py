"""Veason-R1 inference: uniformly sampled frames, one answer with the keyframe timestamp and boxes.

The video is cut into ``num_frames`` equal parts and the first frame of each is shown
(``data.samples.sample_veason_frames`` with anchor 0, the training sampler's spacing),
resized to the policy's input size, with ``data.prompts.veason_prompt`` (timestamps =
original frame indices). The answer ``{"keyframe_timestamp": t, "bbox_2d_list": [...]}``
gives the keyframe and, Veason-R1's single pass, the boxes that prompt the segmenter
(mapped back to the original resolution, ``data.cues.scale_box``).

Documented fallbacks (``fallback/<name>``): ``timestamp_snapped`` (a valid frame index
that was not shown: the nearest shown frame, earlier first on ties), ``keyframe_default``
(unusable answer: the first shown frame and no boxes, i.e. an empty keyframe mask when
the answer's boxes are used).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from data.cues import scale_box
from data.prompts import veason_prompt
from data.samples import sample_veason_frames
from rl.eval.samplers.answers import MALFORMED, parse_veason
from rl.eval.samplers.base import FrameSampler, MLLMClient, SamplerQuery, SamplerResult

__all__ = ["VeasonParams", "VeasonSampler", "veason_frames"]


@dataclass(frozen=True)
class VeasonParams:
    """``num_frames`` shown (``data.num_sampled_frames``), their size ``[W, H]`` (``data.input_size``)."""

    num_frames: int = 6
    input_size: tuple[int, int] = (560, 560)
    temperature: Optional[float] = 0.0


def veason_frames(num_frames: int, k: int) -> list[int]:
    """``min(k, T)`` frames: the first frame of each of ``k`` equal parts of the video."""
    return sample_veason_frames(num_frames, 0, k)


class VeasonSampler(FrameSampler):
    name = "veason"
    needs_mllm = True

    def __init__(self, client: MLLMClient, params: VeasonParams = VeasonParams()):
        super().__init__()
        self.client = client
        self.params = params

    def select(self, queries: Sequence[SamplerQuery]) -> list[SamplerResult]:
        if not queries:
            return []
        shown = [veason_frames(q.num_frames, self.params.num_frames) for q in queries]
        records = [
            {"prompt": veason_prompt(q.text, frames, self.params.input_size),
             "images": q.video.image_paths(frames, self.params.input_size)}
            for q, frames in zip(queries, shown)
        ]
        answers = self.client.ask(records, n=1, temperature=self.params.temperature)
        results = []
        for q, frames, group in zip(queries, shown, answers):
            parsed = parse_veason(group[0].text, q.num_frames)
            self.count("veason", parsed.status)
            result = SamplerResult(keyframe=frames[0])
            if parsed.status == MALFORMED:
                self.fallback(result, "keyframe_default")
                results.append(result)
                continue
            timestamp, boxes = parsed.value
            if timestamp not in frames:
                self.fallback(result, "timestamp_snapped")
                timestamp = min(frames, key=lambda t: (abs(t - timestamp), t))
            result.keyframe = timestamp
            size = q.video.size
            result.boxes = np.asarray([scale_box(b, self.params.input_size, size) for b in boxes],
                                      dtype=np.float64).reshape(-1, 4)
            results.append(result)
        return results
