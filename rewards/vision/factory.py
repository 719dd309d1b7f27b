"""The one place that builds segmenters and propagators (rewards, evaluation and benchmarks use it).

``default_segmenter()`` (GrabCut) and ``default_propagator()`` (optical flow) are the
classical CPU defaults used when no checkpoints are given; the SAM2 and XMem backends
are imported lazily, so this module imports neither torch nor sam2. The segmenter
settings come from :class:`rewards.vision.config.SegmenterConfig`; the config is read
by attribute, so any object with its fields works.

Optional tuning fields read from the config when present (defaults in brackets):
``embedding_cache_size`` [8], ``multimask_output`` [True], ``decode_batch_size`` [64]
for SAM2, ``grabcut_point_radius`` [2] for GrabCut.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rewards.vision.base import Propagator, Segmenter
from rewards.vision.config import SEGMENTER_BACKENDS, SegmenterConfig

__all__ = [
    "PROPAGATOR_NAMES",
    "SEGMENTER_BACKENDS",
    "build_propagator",
    "build_segmenter",
    "default_propagator",
    "default_segmenter",
]

PROPAGATOR_NAMES = ("flow", "sam2", "xmem")


def default_segmenter() -> Segmenter:
    """GrabCut seeded by box and points, with default parameters (CPU, no weights)."""
    from rewards.vision.grabcut import GrabCutSegmenter

    return GrabCutSegmenter()


def default_propagator() -> Propagator:
    """Classical CPU tracker: optical flow + keyframe colour model (:class:`FlowPropagator`), no weights."""
    from rewards.vision.flow import FlowPropagator

    return FlowPropagator()


def build_segmenter(cfg: SegmenterConfig | None = None, **overrides: Any) -> Segmenter:
    """Segmenter selected by ``cfg.backend`` (grabcut | sam2 | oracle_box).

    ``cfg`` None means the config defaults (GrabCut). ``overrides`` are passed to the
    backend's constructor on top of the values taken from ``cfg``. A SAM2 checkpoint
    path that does not exist raises ``FileNotFoundError`` naming it.
    """
    backend = getattr(cfg, "backend", "grabcut") if cfg is not None else "grabcut"
    if backend == "grabcut":
        from rewards.vision.grabcut import GrabCutSegmenter

        kwargs: dict[str, Any] = {}
        if cfg is not None:
            kwargs["iterations"] = cfg.grabcut_iterations
            if hasattr(cfg, "grabcut_point_radius"):
                kwargs["point_radius"] = cfg.grabcut_point_radius
        return GrabCutSegmenter(**{**kwargs, **overrides})
    if backend == "oracle_box":
        from rewards.vision.oracle import BoxFillSegmenter

        return BoxFillSegmenter(**overrides)
    if backend == "sam2":
        from rewards.vision.sam2_image import Sam2ImageSegmenter

        return Sam2ImageSegmenter.from_config(cfg, **overrides)
    raise ValueError(f"unknown segmenter backend {backend!r}; expected one of {list(SEGMENTER_BACKENDS)}")


def _existing(path: str, key: str) -> str:
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"{key} = {path!r}: checkpoint file not found")
    return path


def build_propagator(
    name: str = "flow",
    *,
    segmenter: SegmenterConfig | None = None,
    xmem_checkpoint: str = "",
    xmem_size: int | None = None,
    key_prefix: str = "",
    **kwargs: Any,
) -> Propagator:
    """Propagator ``flow`` | ``sam2`` | ``xmem``; ``kwargs`` go to its constructor last (they win).

    * ``flow``: :class:`~rewards.vision.flow.FlowPropagator` (CPU, no weights).
    * ``sam2``: :class:`~rewards.vision.sam2_video.Sam2VideoPropagator`; with ``segmenter``
      it uses that config's SAM2 model (``sam2_config``, ``checkpoint``, ``image_size``,
      ``device``), so the keyframe segmenter and the propagator share one checkpoint.
    * ``xmem``: :class:`~rewards.vision.xmem.propagator.XMemPropagator` with ``xmem_checkpoint``
      (empty: random weights), ``xmem_size`` (shorter frame side) and ``segmenter.device``.

    A configured checkpoint that does not exist raises ``FileNotFoundError`` naming the
    config key (``key_prefix`` + ``segmenter.checkpoint`` / ``xmem_checkpoint``, e.g. ``eval.``).
    """
    if name == "flow":
        from rewards.vision.flow import FlowPropagator

        return FlowPropagator(**kwargs)
    if name == "sam2":
        from rewards.vision.sam2_video import Sam2VideoPropagator

        settings: dict[str, Any] = {}
        if segmenter is not None:
            settings = dict(sam2_config=segmenter.sam2_config, image_size=segmenter.image_size, device=segmenter.device,
                            checkpoint=_existing(segmenter.checkpoint, f"{key_prefix}segmenter.checkpoint"))
        return Sam2VideoPropagator(**{**settings, **kwargs})
    if name == "xmem":
        from rewards.vision.xmem.propagator import XMemPropagator

        settings = {}
        if xmem_checkpoint:
            settings["checkpoint"] = _existing(xmem_checkpoint, f"{key_prefix}xmem_checkpoint")
        if xmem_size is not None:
            settings["size"] = xmem_size
        if segmenter is not None:
            settings["device"] = segmenter.device
        return XMemPropagator(**{**settings, **kwargs})
    raise ValueError(f"unknown {key_prefix}propagator {name!r}; expected one of {list(PROPAGATOR_NAMES)}")
