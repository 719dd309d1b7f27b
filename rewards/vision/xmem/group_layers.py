"""Layers for per-object ("group") features of shape ``B x K x C x H x W``.

``K`` is the number of objects. Every layer here treats the objects independently
(they are folded into the batch dimension), so all are permutation-equivariant in ``K``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fold_objects(g: torch.Tensor) -> torch.Tensor:
    """``B x K x C x H x W -> (B*K) x C x H x W``."""
    return g.flatten(start_dim=0, end_dim=1)


def unfold_objects(x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``(B*K) x C x H x W -> B x K x C x H x W``."""
    return x.view(batch_size, -1, *x.shape[1:])


def resize_groups(g: torch.Tensor, scale: float, mode: str) -> torch.Tensor:
    """Rescale the spatial size of ``B x K x C x H x W`` by ``scale``.

    ``mode="bilinear"`` (align_corners=False) for upsampling, ``"area"`` for downsampling.
    """
    align_corners = False if mode == "bilinear" else None
    x = F.interpolate(fold_objects(g), scale_factor=scale, mode=mode, align_corners=align_corners)
    return unfold_objects(x, g.shape[0])


def concat_image_features(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Prepend image features to every object's features.

    x: ``B x Cx x H x W``; g: ``B x K x Cg x H x W`` -> ``B x K x (Cx + Cg) x H x W``.
    """
    num_objects = g.shape[1]
    return torch.cat([x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1), g], dim=2)


def add_image_features(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Add image features to every object's features: ``B x C x H x W`` + ``B x K x C x H x W``."""
    return g + x.unsqueeze(1)


class GroupConv2d(nn.Conv2d):
    """A 2-D convolution applied to every object: ``B x K x Cin x H x W -> B x K x Cout x H' x W'``."""

    def forward(self, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return unfold_objects(super().forward(fold_objects(g)), g.shape[0])


class GroupResBlock(nn.Module):
    """Pre-activation residual block of two 3x3 convolutions on per-object features.

    ``B x K x in_dim x H x W -> B x K x out_dim x H x W``; the shortcut is a 3x3 convolution
    (named ``downsample``) when the channel count changes.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.downsample = GroupConv2d(in_dim, out_dim, kernel_size=3, padding=1) if in_dim != out_dim else None
        self.conv1 = GroupConv2d(in_dim, out_dim, kernel_size=3, padding=1)
        self.conv2 = GroupConv2d(out_dim, out_dim, kernel_size=3, padding=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        residual = self.conv2(F.relu(self.conv1(F.relu(g))))
        shortcut = g if self.downsample is None else self.downsample(g)
        return residual + shortcut
