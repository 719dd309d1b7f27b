"""ResNet stems and stages for XMem's encoders, assembled from torchvision's blocks.

Attribute names are torchvision's (``conv1``, ``bn1``, ``<stage>.<i>.conv1``,
``<stage>.<i>.downsample.0/1``) so that XMem checkpoints load by name. Weights are
randomly initialised (torchvision's scheme); nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

ResidualBlock = type[BasicBlock] | type[Bottleneck]

STEM_CHANNELS = 64


def make_stem(in_channels: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """The 7x7 stride-2 convolution and its batch norm (``conv1``, ``bn1``); ``in_channels -> 64``."""
    conv = nn.Conv2d(in_channels, STEM_CHANNELS, kernel_size=7, stride=2, padding=3, bias=False)
    return conv, nn.BatchNorm2d(STEM_CHANNELS)


def apply_stem(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """conv -> bn -> ReLU -> 3x3 stride-2 max-pool. ``B x C x H x W -> B x 64 x H/4 x W/4``."""
    x = torch.relu(bn(conv(x)))
    return nn.functional.max_pool2d(x, kernel_size=3, stride=2, padding=1)


def make_stage(block: ResidualBlock, in_channels: int, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
    """``num_blocks`` residual blocks; the first one strides and projects the shortcut if needed.

    Output channels: ``planes * block.expansion``.
    """
    out_channels = planes * block.expansion
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    blocks: list[nn.Module] = [block(in_channels, planes, stride, shortcut)]
    blocks += [block(out_channels, planes) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def init_resnet_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions (fan-out, ReLU), unit/zero batch-norm affine parameters."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
