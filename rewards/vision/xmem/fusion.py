"""Fusion of image features with per-object features (used by the value encoder and the decoder)."""

from __future__ import annotations

import torch
from torch import nn

from rewards.vision.xmem.cbam import CBAM
from rewards.vision.xmem.group_layers import GroupResBlock, concat_image_features, fold_objects, unfold_objects


class FeatureFusionBlock(nn.Module):
    """Concatenate image features to every object, then residual block, CBAM, residual block.

    x: ``B x x_dim x H x W``; g: ``B x K x g_dim x H x W`` -> ``B x K x out_dim x H x W``.
    """

    def __init__(self, x_dim: int, g_dim: int, mid_dim: int, out_dim: int) -> None:
        super().__init__()
        self.block1 = GroupResBlock(x_dim + g_dim, mid_dim)
        self.attention = CBAM(mid_dim)
        self.block2 = GroupResBlock(mid_dim, out_dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = self.block1(concat_image_features(x, g))
        attended = unfold_objects(self.attention(fold_objects(g)), g.shape[0])
        return self.block2(g + attended)
