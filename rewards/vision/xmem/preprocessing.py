"""Frame and mask preparation for XMem: ImageNet normalisation, shorter-side resize, padding to 16."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_MULTIPLE = 16


@dataclass(frozen=True)
class Padding:
    """Pixels added on each side by :func:`pad_to_multiple`."""

    left: int
    right: int
    top: int
    bottom: int


def frame_to_tensor(frame: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """``H x W x 3`` uint8 RGB -> ``3 x H x W`` float, scaled to [0, 1] and ImageNet-normalised."""
    image = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    return (image - mean) / std


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Shape with the shorter side equal to ``size`` and the aspect ratio kept (longer side
    truncated, as torchvision's ``Resize(size)``); ``size <= 0`` keeps the shape."""
    if size <= 0:
        return height, width
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resize_image(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (antialiased, align_corners=False) of ``C x H x W`` to ``C x shape``."""
    if tuple(image.shape[-2:]) == tuple(shape):
        return image
    return F.interpolate(image[None], size=shape, mode="bilinear", align_corners=False, antialias=True)[0]


def resize_masks(masks: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of ``K x H x W`` masks to ``K x shape``."""
    if tuple(masks.shape[-2:]) == tuple(shape):
        return masks
    return F.interpolate(masks[None].float(), size=shape, mode="nearest")[0]


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> tuple[torch.Tensor, Padding]:
    """Zero-pad the last two dims of ``... x H x W`` up to multiples of ``multiple``, centred
    (the odd pixel goes to the bottom/right). Returns the padded tensor and the padding."""
    height, width = x.shape[-2:]
    extra_h = -height % multiple
    extra_w = -width % multiple
    padding = Padding(extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2)
    return F.pad(x, (padding.left, padding.right, padding.top, padding.bottom)), padding


def unpad(x: torch.Tensor, padding: Padding) -> torch.Tensor:
    """Undo :func:`pad_to_multiple` on ``... x H x W``."""
    height, width = x.shape[-2:]
    return x[..., padding.top : height - padding.bottom, padding.left : width - padding.right]
