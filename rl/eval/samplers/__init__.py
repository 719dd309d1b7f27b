"""Keyframe samplers of the evaluation pipeline, selected by ``eval.sampler``.

====================  ============================================================
``hierarchical``      VideoSeg-R1 hierarchical text-guided frame sampler (:mod:`.hierarchical`)
``rcot``              RCoT-Seg VDG + KFG + agentic keyframe selection (:mod:`.rcot`)
``rcot_light``        the same, re-selection on 16 uniform frames
``veason``            Veason-R1 uniform frames + predicted keyframe timestamp (:mod:`.veason`)
``first_frame``       frame 0 (:mod:`.baselines`)
``oracle``            largest ground-truth area (:mod:`.baselines`)
====================  ============================================================

Prompts and answer parsers: :mod:`.answers`; the shared MLLM client and result types:
:mod:`.base`; lazy frames / model-input PNGs: :mod:`.frames`.
"""

from __future__ import annotations

from typing import Any, Optional

from rl.eval.config import MLLM_SAMPLERS, SAMPLERS  # the one list of sampler names (eval.sampler's choices)
from rl.eval.samplers.base import Answer, FrameSampler, MLLMClient, SamplerQuery, SamplerResult


def build_sampler(name: str, cfg: Any = None, client: Optional[MLLMClient] = None) -> FrameSampler:
    """Sampler ``name`` with settings from a :class:`rl.config.Config` (``cfg.eval``, ``cfg.data``,
    ``cfg.rollout``; None = defaults). MLLM samplers need ``client``."""
    from rl.eval.samplers.baselines import FirstFrameSampler, OracleSampler

    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {list(SAMPLERS)}")
    if name == "first_frame":
        return FirstFrameSampler()
    if name == "oracle":
        return OracleSampler()
    if client is None:
        raise ValueError(f"sampler {name!r} asks the MLLM: it needs a policy (checkpoint) or eval.sampler_model")
    if cfg is None:
        from rl.config import Config

        cfg = Config()
    ev = cfg.eval
    frame_size = (int(ev.sampler_frame_size[0]), int(ev.sampler_frame_size[1]))
    input_size = (int(cfg.data.input_size[0]), int(cfg.data.input_size[1]))
    if name == "hierarchical":
        from rl.eval.samplers.hierarchical import HierarchicalSampler, HTFSParams

        return HierarchicalSampler(client, HTFSParams(
            num_intervals=ev.htfs_num_intervals, delta=ev.htfs_delta, max_levels=ev.htfs_max_levels,
            num_positions=ev.htfs_num_positions, top_m=ev.htfs_top_m,
            max_reference_frames=ev.htfs_max_reference_frames, reference_stride=ev.htfs_reference_stride,
            frame_size=frame_size, max_frames=ev.sampler_max_frames, temperature=ev.sampler_temperature))
    if name in ("rcot", "rcot_light"):
        from rl.eval.samplers.rcot import RcotParams, RcotSampler

        return RcotSampler(client, RcotParams(
            max_rounds=ev.aks_max_rounds, light=name == "rcot_light", light_frames=ev.rcot_light_frames,
            frame_size=frame_size, max_frames=ev.sampler_max_frames, keyframe_size=input_size,
            temperature=cfg.rollout.val_temperature))
    from rl.eval.samplers.veason import VeasonParams, VeasonSampler

    return VeasonSampler(client, VeasonParams(num_frames=cfg.data.num_sampled_frames, input_size=input_size,
                                              temperature=cfg.rollout.val_temperature))


__all__ = ["SAMPLERS", "MLLM_SAMPLERS", "build_sampler", "Answer", "FrameSampler", "MLLMClient", "SamplerQuery",
           "SamplerResult"]
