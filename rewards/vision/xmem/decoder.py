"""XMem's mask decoder: memory readout + hidden state + key features -> per-object mask logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rewards.vision.xmem.encoders import KEY_FEATURE_DIMS
from rewards.vision.xmem.fusion import FeatureFusionBlock
from rewards.vision.xmem.group_layers import GroupResBlock, add_image_features, fold_objects, resize_groups
from rewards.vision.xmem.hidden_state import HiddenUpdater

DECODER_DIMS = (512, 256, 256)  # per-object channels at stride 16, 8, 4
HIDDEN_UPDATE_DIM = 256  # channels the three scales are projected to before the hidden update


class UpsampleBlock(nn.Module):
    """Upsample per-object features x2 and merge a skip connection from the key encoder.

    skip: ``B x skip_dim x 2H x 2W``; g: ``B x K x up_dim x H x W`` -> ``B x K x out_dim x 2H x 2W``.
    """

    def __init__(self, skip_dim: int, up_dim: int, out_dim: int) -> None:
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_dim, up_dim, kernel_size=3, padding=1)
        self.out_conv = GroupResBlock(up_dim, out_dim)

    def forward(self, skip: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        merged = add_image_features(self.skip_conv(skip), resize_groups(g, 2.0, mode="bilinear"))
        return self.out_conv(merged)


class Decoder(nn.Module):
    """Decode masks (and update the hidden state).

    f16/f8/f4: key features ``B x {1024, 512, 256} x H/{16, 8, 4} x W/{16, 8, 4}``;
    hidden: ``B x K x hidden_dim x H/16 x W/16``; readout: ``B x K x value_dim x H/16 x W/16`` ->
    (new hidden or None when ``update_hidden`` is False, logits ``B x K x H x W``).
    """

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        d16, d8, d4 = DECODER_DIMS
        k16, k8, k4 = KEY_FEATURE_DIMS
        self.fuser = FeatureFusionBlock(k16, value_dim + hidden_dim, d16, d16)
        # the stride-4 input of the hidden update also sees the mask logit (+1 channel)
        self.hidden_update = HiddenUpdater((d16, d8, d4 + 1), HIDDEN_UPDATE_DIM, hidden_dim)
        self.up_16_8 = UpsampleBlock(k8, d16, d8)
        self.up_8_4 = UpsampleBlock(k4, d8, d4)
        self.pred = nn.Conv2d(d4, 1, kernel_size=3, padding=1)

    def forward(
        self,
        f16: torch.Tensor,
        f8: torch.Tensor,
        f4: torch.Tensor,
        hidden: torch.Tensor,
        readout: torch.Tensor,
        update_hidden: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        batch_size, num_objects = readout.shape[:2]
        g16 = self.fuser(f16, torch.cat([readout, hidden], dim=2))
        g8 = self.up_16_8(f8, g16)
        g4 = self.up_8_4(f4, g8)
        logits4 = self.pred(F.relu(fold_objects(g4)))  # (B*K) x 1 x H/4 x W/4

        new_hidden = None
        if update_hidden:
            logits_per_object = logits4.view(batch_size, num_objects, 1, *logits4.shape[-2:])
            new_hidden = self.hidden_update(g16, g8, torch.cat([g4, logits_per_object], dim=2), hidden)

        logits = F.interpolate(logits4, scale_factor=4.0, mode="bilinear", align_corners=False)
        return new_hidden, logits.view(batch_size, num_objects, *logits.shape[-2:])
