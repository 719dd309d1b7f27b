"""XMem's encoders: the key (query) encoder, its key projection, and the mask-conditioned value encoder."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from rewards.vision.xmem.fusion import FeatureFusionBlock
from rewards.vision.xmem.group_layers import fold_objects, unfold_objects
from rewards.vision.xmem.hidden_state import HiddenReinforcer
from rewards.vision.xmem.resnet import apply_stem, init_resnet_weights, make_stage, make_stem

KEY_FEATURE_DIMS = (1024, 512, 256)  # channels of f16, f8, f4
VALUE_TRUNK_DIM = 256  # channels at stride 16 of the ResNet-18 trunk


class KeyEncoder(nn.Module):
    """ResNet-50 up to layer3 (its layer1 is named ``res2``).

    frame: ``B x 3 x H x W`` (normalised, H and W multiples of 16) ->
    ``f16: B x 1024 x H/16 x W/16``, ``f8: B x 512 x H/8 x W/8``, ``f4: B x 256 x H/4 x W/4``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = make_stem(3)
        self.res2 = make_stage(Bottleneck, 64, 64, num_blocks=3, stride=1)
        self.layer2 = make_stage(Bottleneck, 256, 128, num_blocks=4, stride=2)
        self.layer3 = make_stage(Bottleneck, 512, 256, num_blocks=6, stride=2)
        init_resnet_weights(self)

    def forward(self, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.res2(apply_stem(frame, self.conv1, self.bn1))
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class KeyProjection(nn.Module):
    """Key, shrinkage and selection from the stride-16 features.

    features: ``B x in_dim x h x w`` -> key ``B x key_dim x h x w``, shrinkage
    ``B x 1 x h x w`` (``d^2 + 1 >= 1``) or None, selection ``B x key_dim x h x w`` (in (0, 1)) or None.
    """

    def __init__(self, in_dim: int, key_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)
        self.d_proj = nn.Conv2d(in_dim, 1, kernel_size=3, padding=1)
        self.e_proj = nn.Conv2d(in_dim, key_dim, kernel_size=3, padding=1)
        nn.init.orthogonal_(self.key_proj.weight)
        nn.init.zeros_(self.key_proj.bias)

    def forward(
        self, features: torch.Tensor, need_shrinkage: bool = True, need_selection: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        shrinkage = self.d_proj(features) ** 2 + 1 if need_shrinkage else None
        selection = torch.sigmoid(self.e_proj(features)) if need_selection else None
        return self.key_proj(features), shrinkage, selection


class ValueEncoder(nn.Module):
    """ResNet-18 up to layer3 on image + object mask + other-objects mask, fused with key features.

    image: ``B x 3 x H x W``; image_f16: ``B x 1024 x H/16 x W/16``; hidden:
    ``B x K x hidden_dim x H/16 x W/16``; masks, others: ``B x K x H x W`` ->
    value ``B x K x value_dim x H/16 x W/16`` and the (possibly deep-updated) hidden state.
    """

    def __init__(self, value_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = make_stem(5)
        self.layer1 = make_stage(BasicBlock, 64, 64, num_blocks=2, stride=1)
        self.layer2 = make_stage(BasicBlock, 64, 128, num_blocks=2, stride=2)
        self.layer3 = make_stage(BasicBlock, 128, 256, num_blocks=2, stride=2)
        init_resnet_weights(self)
        self.fuser = FeatureFusionBlock(KEY_FEATURE_DIMS[0], VALUE_TRUNK_DIM, value_dim, value_dim)
        self.hidden_reinforce = HiddenReinforcer(value_dim, hidden_dim)

    def forward(
        self,
        image: torch.Tensor,
        image_f16: torch.Tensor,
        hidden: torch.Tensor,
        masks: torch.Tensor,
        others: torch.Tensor,
        is_deep_update: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size, num_objects = masks.shape[:2]
        per_object_image = image.unsqueeze(1).expand(-1, num_objects, -1, -1, -1)
        g = torch.cat([per_object_image, masks.unsqueeze(2), others.unsqueeze(2)], dim=2)  # B x K x 5 x H x W
        g = apply_stem(fold_objects(g), self.conv1, self.bn1)
        g = self.layer3(self.layer2(self.layer1(g)))
        g = self.fuser(image_f16, unfold_objects(g, batch_size))
        if is_deep_update:
            hidden = self.hidden_reinforce(g, hidden)
        return g, hidden
