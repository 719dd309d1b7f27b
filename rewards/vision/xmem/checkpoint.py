"""Building XMem with random weights or from a released checkpoint (``XMem.pth``), strictly."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from rewards.vision.xmem.network import XMem

logger = logging.getLogger(__name__)


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a saved state dict on the CPU; a missing file raises FileNotFoundError naming it."""
    checkpoint_path = Path(path)
    if not checkpoint_path.is_file():
        raise FileNotFoundError(
            f"XMem checkpoint not found: {checkpoint_path} (expected the released XMem.pth state dict; "
            "pass checkpoint=None for random weights)"
        )
    state_dict = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{checkpoint_path} does not hold a plain state dict of tensors")
    return state_dict


def dims_from_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, int]:
    """key/value/hidden dimensions implied by a checkpoint's tensor shapes."""
    return {
        "key_dim": state_dict["key_proj.key_proj.weight"].shape[0],
        "value_dim": state_dict["value_encoder.fuser.block2.conv2.weight"].shape[0],
        "hidden_dim": state_dict["decoder.hidden_update.transform.weight"].shape[0] // 3,
    }


def build_xmem(checkpoint: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> XMem:
    """XMem in eval mode on ``device``: random weights when ``checkpoint`` is None, else
    the checkpoint's weights loaded with ``strict=True``."""
    if checkpoint is None:
        logger.warning("XMem built with RANDOM weights: its propagated masks are meaningless")
        network = XMem()
    else:
        state_dict = load_state_dict_file(checkpoint)
        network = XMem(**dims_from_state_dict(state_dict))
        network.load_state_dict(state_dict, strict=True)
    return network.to(device).eval()
