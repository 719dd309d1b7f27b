"""Sensory memory updates: XMem's convolutional GRU-like hidden-state cells.

The hidden state is ``B x K x C^h x H/16 x W/16``. Both cells predict ``3 * C^h`` channels:
a forget gate, an update gate and a candidate value, combined as
``h' = forget * h * (1 - update) + update * candidate`` (XMem's variant of a GRU, in which
the candidate does not depend on the reset-gated state).
"""

from __future__ import annotations

import torch
from torch import nn

from rewards.vision.xmem.group_layers import GroupConv2d, resize_groups


def gated_update(gate_values: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Apply the gates. gate_values: ``B x K x 3C x H x W``; hidden: ``B x K x C x H x W`` -> new hidden."""
    forget_logits, update_logits, candidate_logits = gate_values.chunk(3, dim=2)
    forget = torch.sigmoid(forget_logits)
    update = torch.sigmoid(update_logits)
    candidate = torch.tanh(candidate_logits)
    return forget * hidden * (1 - update) + update * candidate


class HiddenReinforcer(nn.Module):
    """Deep update in the value encoder: hidden state from the new value features.

    g: ``B x K x g_dim x H x W``; hidden: ``B x K x hidden_dim x H x W`` -> new hidden.
    """

    def __init__(self, g_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.transform = GroupConv2d(g_dim + hidden_dim, 3 * hidden_dim, kernel_size=3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(self, g: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return gated_update(self.transform(torch.cat([g, hidden], dim=2)), hidden)


class HiddenUpdater(nn.Module):
    """Per-frame update in the decoder from its multi-scale features.

    g16: ``B x K x g_dims[0] x H x W``; g8: ``B x K x g_dims[1] x 2H x 2W``;
    g4: ``B x K x g_dims[2] x 4H x 4W`` (decoder features plus the mask logit);
    hidden: ``B x K x hidden_dim x H x W`` -> new hidden.
    """

    def __init__(self, g_dims: tuple[int, int, int], mid_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.g16_conv = GroupConv2d(g_dims[0], mid_dim, kernel_size=1)
        self.g8_conv = GroupConv2d(g_dims[1], mid_dim, kernel_size=1)
        self.g4_conv = GroupConv2d(g_dims[2], mid_dim, kernel_size=1)
        self.transform = GroupConv2d(mid_dim + hidden_dim, 3 * hidden_dim, kernel_size=3, padding=1)
        nn.init.xavier_normal_(self.transform.weight)

    def forward(
        self, g16: torch.Tensor, g8: torch.Tensor, g4: torch.Tensor, hidden: torch.Tensor
    ) -> torch.Tensor:
        merged = (
            self.g16_conv(g16)
            + self.g8_conv(resize_groups(g8, 0.5, mode="area"))
            + self.g4_conv(resize_groups(g4, 0.25, mode="area"))
        )
        return gated_update(self.transform(torch.cat([merged, hidden], dim=2)), hidden)
