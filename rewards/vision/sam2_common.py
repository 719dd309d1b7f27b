"""Building SAM2 models at any input resolution with the installed ``sam2`` package.

Facts about sam2 1.1.0 this relies on (checked on the installed source):

* ``build_sam2`` / ``build_sam2_video_predictor`` compose a *packaged* hydra config
  (e.g. ``configs/sam2.1/sam2.1_hiera_t.yaml``) and accept extra hydra overrides;
  ``ckpt_path=None`` leaves random weights. ``++model.image_size=S`` makes the
  prompt encoder and the input transforms follow ``S``.
* The Hiera trunk emits stride-4/8/16/32 maps and the FPN adds the stride-32 map,
  upsampled x2, to the stride-16 one, so ``S`` must be a multiple of 32.
* ``SAM2ImagePredictor`` hard-codes its backbone feature sizes for 1024 px
  (``_bb_feat_sizes`` = 256, 128, 64); at another size they must be set to
  ``S/4, S/8, S/16`` or ``set_image`` fails on a reshape (see :func:`backbone_feature_sizes`).
* The video model's memory attention uses RoPE over the stride-16 map
  (``feat_sizes: [64, 64]`` in the configs); it is overridden to ``S/16`` as well.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

BACKBONE_STRIDES = (4, 8, 16)   # strides of the feature maps the SAM decoder reads (high-res ... image embedding)
SIZE_MULTIPLE = 32              # stride of the coarsest Hiera stage


def check_image_size(image_size: int) -> int:
    """Return ``image_size`` or raise ``ValueError`` when SAM2 cannot run at it."""
    if int(image_size) != image_size or image_size <= 0 or image_size % SIZE_MULTIPLE:
        raise ValueError(f"SAM2 image_size must be a positive multiple of {SIZE_MULTIPLE}, got {image_size}")
    return int(image_size)


def backbone_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """``[(S/4, S/4), (S/8, S/8), (S/16, S/16)]``: what ``SAM2ImagePredictor._bb_feat_sizes`` must hold at size S."""
    size = check_image_size(image_size)
    return [(size // s, size // s) for s in BACKBONE_STRIDES]


def hydra_overrides(image_size: int, video: bool) -> list[str]:
    """Hydra overrides building a SAM2 model for ``image_size`` px inputs."""
    size = check_image_size(image_size)
    overrides = [f"++model.image_size={size}"]
    if video:
        embed = size // BACKBONE_STRIDES[-1]
        for attention in ("self_attention", "cross_attention"):
            overrides.append(f"++model.memory_attention.layer.{attention}.feat_sizes=[{embed},{embed}]")
    return overrides


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> str | None:
    """``None`` for random weights (empty path), else the path; a missing file raises ``FileNotFoundError``."""
    if checkpoint is None or str(checkpoint) == "":
        return None
    path = os.fspath(checkpoint)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SAM2 checkpoint not found: {path!r} (set segmenter.checkpoint to an existing .pt file, or '' for random weights)")
    return path


def build_sam2_model(
    sam2_config: str, checkpoint: str | None, image_size: int, device: str, video: bool, seed: int | None = 0
) -> Any:
    """A SAM2 image model (``video=False``) or ``SAM2VideoPredictor`` (``video=True``) in eval mode.

    Random weights when ``checkpoint`` is empty (logged as a warning; ``seed`` makes them
    reproducible, None leaves torch's RNG alone).
    """
    ckpt_path = resolve_checkpoint(checkpoint)
    try:
        from sam2.build_sam import build_sam2, build_sam2_video_predictor
        import torch
    except ImportError as err:
        raise ImportError(f"the SAM2 backend needs the 'sam2' package (SAM2_BUILD_CUDA=0 pip install sam2): {err}") from err
    builder = build_sam2_video_predictor if video else build_sam2
    if ckpt_path is None:
        logger.warning("SAM2 (%s) built with RANDOM weights: its masks are meaningless", sam2_config)
    try:
        with torch.random.fork_rng(devices=[]):  # seeding must not disturb the caller's RNG
            if ckpt_path is None and seed is not None:
                torch.manual_seed(seed)
            return builder(
                sam2_config, ckpt_path=ckpt_path, device=device, hydra_overrides_extra=hydra_overrides(image_size, video)
            )
    except Exception as err:
        if type(err).__name__ in ("MissingConfigException", "ConfigCompositionException"):
            raise ValueError(
                f"SAM2 config {sam2_config!r} not found among the sam2 package's configs "
                "(e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml'); if hydra was initialised by another "
                f"application, sam2's config module is not searched: {err}"
            ) from err
        raise
