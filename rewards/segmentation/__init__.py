"""Frozen vision backends behind the mask rewards and evaluation.

Public API::

    build_segmenter(cfg: SegmenterConfig | None = None, **overrides) -> Segmenter   # grabcut | sam2 | oracle_box
    build_propagator(name="flow", **kwargs) -> Propagator                         # flow | sam2 | xmem
    default_segmenter() -> Segmenter      # OpenCV GrabCut, CPU, no weights
    default_propagator() -> Propagator    # optical flow + colour-model tracker, CPU, no weights
    Segmenter.segment(image HxWx3 uint8, prompt_sets) -> list of HxW bool
    Propagator.propagate(frames TxHxWx3 uint8, keyframe, mask HxW bool) -> TxHxW bool

Backend classes (``GrabCutSegmenter``, ``BoxFillSegmenter``, ``FlowPropagator``,
``Sam2ImageSegmenter``, ``Sam2VideoPropagator``) live in their own modules; the SAM2
ones import torch/sam2 only when instantiated.
"""

from rewards.segmentation.base import ObjectPrompt, Propagator, Segmenter
from rewards.segmentation.factory import build_propagator, build_segmenter, default_propagator, default_segmenter

__all__ = [
    "ObjectPrompt",
    "Propagator",
    "Segmenter",
    "build_propagator",
    "build_segmenter",
    "default_propagator",
    "default_segmenter",
]
