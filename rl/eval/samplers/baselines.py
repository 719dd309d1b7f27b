"""Baseline keyframe choices without the MLLM: the first frame, and the oracle (largest GT area).

``first_frame`` is VideoSeg-R1's f_0 ablation and RCoT-Seg's no-KFG setting;
``oracle`` picks the frame of largest ground-truth union area (the RCoT-Seg keyframe
definition, first such frame on ties), an upper bound for keyframe selection that
needs the split's masks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rl.eval.samplers.base import FrameSampler, SamplerQuery, SamplerResult

__all__ = ["FirstFrameSampler", "OracleSampler"]


class FirstFrameSampler(FrameSampler):
    name = "first_frame"

    def select(self, queries: Sequence[SamplerQuery]) -> list[SamplerResult]:
        return [SamplerResult(keyframe=0) for _ in queries]


class OracleSampler(FrameSampler):
    name = "oracle"
    needs_gt = True

    def select(self, queries: Sequence[SamplerQuery]) -> list[SamplerResult]:
        results = []
        for q in queries:
            if q.gt_areas is None:
                raise ValueError(
                    f"sampler 'oracle' needs ground-truth masks; video {q.video.sample.video_id!r} has none "
                    "(a split released without annotations)"
                )
            areas = np.asarray(q.gt_areas)
            if areas.shape != (q.num_frames,):
                raise ValueError(f"gt_areas must have one value per frame ({q.num_frames}), got shape {areas.shape}")
            results.append(SamplerResult(keyframe=int(np.argmax(areas))))
        return results
