"""Frozen perception models behind the mask rewards and evaluation (segmenters, propagators).

A leaf package: it imports nothing from ``rl`` and nothing from the reward modules;
rewards and evaluation import down into it. Public API::

    SegmenterConfig                                                                # config.py
    build_segmenter(cfg: SegmenterConfig | None = None, **overrides) -> Segmenter   # grabcut | sam2 | oracle_box
    build_propagator(name="flow", **kwargs) -> Propagator                         # flow | sam2 | xmem
    default_segmenter() -> Segmenter      # OpenCV GrabCut, CPU, no weights
    default_propagator() -> Propagator    # optical flow + colour-model tracker, CPU, no weights
    Segmenter.segment(image HxWx3 uint8, prompt_sets) -> list of HxW bool
    Propagator.propagate(frames TxHxWx3 uint8, keyframe, mask HxW bool) -> TxHxW bool

Modules: ``base`` (the interfaces), ``config``, ``factory`` (the only place that picks a
backend by name), ``resolve`` (how a reward finds its model and turns answer cues into
prompts), the backends ``grabcut``, ``oracle``, ``sam2_common`` / ``sam2_image`` /
``sam2_video``, ``flow`` + ``tracking``, their input checks ``prompts`` / ``video_inputs``,
and the ``xmem`` subpackage. The SAM2 and XMem backends import torch/sam2 only when built.
"""

from rewards.vision.base import ObjectPrompt, Propagator, Segmenter
from rewards.vision.config import SegmenterConfig
from rewards.vision.factory import (
    PROPAGATOR_NAMES,
    SEGMENTER_BACKENDS,
    build_propagator,
    build_segmenter,
    default_propagator,
    default_segmenter,
)

__all__ = [
    "ObjectPrompt",
    "PROPAGATOR_NAMES",
    "Propagator",
    "SEGMENTER_BACKENDS",
    "Segmenter",
    "SegmenterConfig",
    "build_propagator",
    "build_segmenter",
    "default_propagator",
    "default_segmenter",
]
