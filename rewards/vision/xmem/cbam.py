"""CBAM attention (Woo et al., ECCV 2018): a channel gate followed by a spatial gate.

The capitalised attribute names (``ChannelGate``, ``SpatialGate``) and the layout
``ChannelGate.mlp.{1,3}`` / ``SpatialGate.spatial.conv`` are dictated by XMem's checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelGate(nn.Module):
    """Scale each channel by a sigmoid of an MLP over its global average and max.

    ``B x C x H x W -> B x C x H x W``; the MLP is ``C -> C/reduction -> C`` and shared by both pools.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attention = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(attention)[:, :, None, None]


class SpatialConv(nn.Module):
    """Holder of the spatial gate's 7x7 convolution (``2 -> 1`` channels, as ``.conv``)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SpatialGate(nn.Module):
    """Scale each position by a sigmoid of a conv over its channel max and channel mean.

    ``B x C x H x W -> B x C x H x W``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spatial = SpatialConv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    """Channel gate then spatial gate: ``B x C x H x W -> B x C x H x W``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.ChannelGate = ChannelGate(channels, reduction)  # noqa: N815 (checkpoint name)
        self.SpatialGate = SpatialGate()  # noqa: N815 (checkpoint name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.SpatialGate(self.ChannelGate(x))
