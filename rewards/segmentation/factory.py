"""Builds segmenters and propagators by name / from :class:`rl.config.SegmenterConfig`.

``default_segmenter()`` (GrabCut) and ``default_propagator()`` (optical flow) are the
classical CPU defaults used when no checkpoints are given; SAM2 and XMem backends
are imported lazily, so this module imports neither torch nor sam2. Nothing here
imports ``rl`` at import time (``rewards`` does not depend on ``rl``); the config is
read by attribute, so any object with ``SegmenterConfig``'s fields works.

Optional tuning fields read from the config when present (defaults in brackets):
``embedding_cache_size`` [8], ``multimask_output`` [True], ``decode_batch_size`` [64]
for SAM2, ``grabcut_point_radius`` [2] for GrabCut.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewards.segmentation.base import Propagator, Segmenter

if TYPE_CHECKING:  # pragma: no cover
    from rl.config import SegmenterConfig

SEGMENTER_BACKENDS = ("grabcut", "sam2", "oracle_box")
PROPAGATOR_NAMES = ("flow", "sam2", "xmem")


def default_segmenter() -> Segmenter:
    """GrabCut seeded by box and points, with default parameters (CPU, no weights)."""
    from rewards.segmentation.grabcut import GrabCutSegmenter

    return GrabCutSegmenter()


def default_propagator() -> Propagator:
    """Classical CPU tracker: optical flow + keyframe colour model (:class:`FlowPropagator`), no weights."""
    from rewards.segmentation.flow import FlowPropagator

    return FlowPropagator()


def build_segmenter(cfg: "SegmenterConfig | None" = None, **overrides: Any) -> Segmenter:
    """Segmenter selected by ``cfg.backend`` (grabcut | sam2 | oracle_box).

    ``cfg`` None means the config defaults (GrabCut). ``overrides`` are passed to the
    backend's constructor on top of the values taken from ``cfg``. A SAM2 checkpoint
    path that does not exist raises ``FileNotFoundError`` naming it.
    """
    backend = getattr(cfg, "backend", "grabcut") if cfg is not None else "grabcut"
    if backend == "grabcut":
        from rewards.segmentation.grabcut import GrabCutSegmenter

        kwargs: dict[str, Any] = {}
        if cfg is not None:
            kwargs["iterations"] = cfg.grabcut_iterations
            if hasattr(cfg, "grabcut_point_radius"):
                kwargs["point_radius"] = cfg.grabcut_point_radius
        return GrabCutSegmenter(**{**kwargs, **overrides})
    if backend == "oracle_box":
        from rewards.segmentation.oracle import BoxFillSegmenter

        return BoxFillSegmenter(**overrides)
    if backend == "sam2":
        from rewards.segmentation.sam2_image import Sam2ImageSegmenter

        return Sam2ImageSegmenter.from_config(cfg, **overrides)
    raise ValueError(f"unknown segmenter backend {backend!r}; expected one of {list(SEGMENTER_BACKENDS)}")


def build_propagator(name: str = "flow", **kwargs: Any) -> Propagator:
    """Propagator ``flow`` | ``sam2`` | ``xmem``; ``kwargs`` go to its constructor.

    ``xmem`` is ``rl.eval.xmem.propagator.XMemPropagator`` (imported only when asked for).
    """
    if name == "flow":
        from rewards.segmentation.flow import FlowPropagator

        return FlowPropagator(**kwargs)
    if name == "sam2":
        from rewards.segmentation.sam2_video import Sam2VideoPropagator

        return Sam2VideoPropagator(**kwargs)
    if name == "xmem":
        try:
            from rl.eval.xmem.propagator import XMemPropagator
        except ImportError as err:
            raise ImportError(f"propagator 'xmem' needs rl.eval.xmem.propagator.XMemPropagator: {err}") from err
        return XMemPropagator(**kwargs)
    raise ValueError(f"unknown propagator {name!r}; expected one of {list(PROPAGATOR_NAMES)}")
