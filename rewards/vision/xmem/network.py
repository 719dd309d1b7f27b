"""The XMem network (Cheng & Schwing, ECCV 2022): encoders, key projection and decoder.

Module and parameter names match the released ``XMem.pth`` so that it loads with
``strict=True``. Memory management lives in :mod:`rewards.vision.xmem.memory`; this module only
holds the learned parts and the stateless operations XMem's inference calls.

Shapes: ``B`` batch, ``K`` objects, ``H x W`` the (padded) image size, ``h x w = H/16 x W/16``.
"""

from __future__ import annotations

import torch
from torch import nn

from rewards.vision.xmem.affinity import memory_similarity, read_values, topk_softmax
from rewards.vision.xmem.aggregation import soft_aggregate
from rewards.vision.xmem.decoder import Decoder
from rewards.vision.xmem.encoders import KEY_FEATURE_DIMS, KeyEncoder, KeyProjection, ValueEncoder

MultiScaleFeatures = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def other_objects_masks(masks: torch.Tensor) -> torch.Tensor:
    """For each object, the sum of all other objects' masks. ``B x K x H x W -> B x K x H x W``.

    A single object gets zeros.
    """
    return masks.sum(dim=1, keepdim=True) - masks


class XMem(nn.Module):
    """XMem with key/value/hidden dimensions ``key_dim``/``value_dim``/``hidden_dim`` (64/512/64)."""

    def __init__(self, key_dim: int = 64, value_dim: int = 512, hidden_dim: int = 64) -> None:
        super().__init__()
        if min(key_dim, value_dim, hidden_dim) <= 0:
            raise ValueError(f"dimensions must be positive, got {key_dim}, {value_dim}, {hidden_dim}")
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.hidden_dim = hidden_dim
        self.key_encoder = KeyEncoder()
        self.value_encoder = ValueEncoder(value_dim, hidden_dim)
        self.key_proj = KeyProjection(KEY_FEATURE_DIMS[0], key_dim)
        self.decoder = Decoder(value_dim, hidden_dim)

    def encode_key(
        self, frame: torch.Tensor, need_shrinkage: bool = True, need_selection: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a normalised frame ``B x 3 x H x W`` (H, W multiples of 16).

        Returns key ``B x CK x h x w``, shrinkage ``B x 1 x h x w`` or None, selection
        ``B x CK x h x w`` or None, and features f16 ``B x 1024 x h x w``, f8 ``B x 512 x 2h x 2w``,
        f4 ``B x 256 x 4h x 4w``.
        """
        f16, f8, f4 = self.key_encoder(frame)
        key, shrinkage, selection = self.key_proj(f16, need_shrinkage, need_selection)
        return key, shrinkage, selection, f16, f8, f4

    def encode_value(
        self,
        frame: torch.Tensor,
        image_f16: torch.Tensor,
        hidden: torch.Tensor,
        masks: torch.Tensor,
        is_deep_update: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode object masks into memory values.

        frame: ``B x 3 x H x W``; image_f16: ``B x 1024 x h x w``; hidden: ``B x K x CH x h x w``;
        masks: ``B x K x H x W`` (probabilities). Returns value ``B x K x CV x h x w`` and the
        hidden state (deep-updated when ``is_deep_update``).
        """
        return self.value_encoder(frame, image_f16, hidden, masks, other_objects_masks(masks), is_deep_update)

    def read_memory(
        self,
        query_key: torch.Tensor,
        query_selection: torch.Tensor | None,
        memory_key: torch.Tensor,
        memory_shrinkage: torch.Tensor | None,
        memory_value: torch.Tensor,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """Read a memory of ``T`` frames for one query frame (XMem's training-time read).

        query_key, query_selection: ``B x CK x h x w``; memory_key: ``B x CK x T x h x w``;
        memory_shrinkage: ``B x 1 x T x h x w``; memory_value: ``B x K x CV x T x h x w``.
        Returns the readout ``B x K x CV x h x w``. (Inference reads through
        :class:`~rewards.vision.xmem.memory.XMemMemory` instead.)
        """
        batch_size, num_objects, value_dim = memory_value.shape[:3]
        height, width = query_key.shape[-2:]
        similarity = memory_similarity(
            memory_key.flatten(start_dim=2),
            None if memory_shrinkage is None else memory_shrinkage.flatten(start_dim=2),
            query_key.flatten(start_dim=2),
            None if query_selection is None else query_selection.flatten(start_dim=2),
        )
        affinity = topk_softmax(similarity, top_k)  # B x N x hw
        values = memory_value.flatten(start_dim=3).flatten(start_dim=1, end_dim=2)  # B x (K*CV) x N
        readout = read_values(affinity, values)
        return readout.view(batch_size, num_objects, value_dim, height, width)

    def segment(
        self,
        multi_scale_features: MultiScaleFeatures,
        memory_readout: torch.Tensor,
        hidden: torch.Tensor,
        update_hidden: bool = True,
        strip_background: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Decode masks from the memory readout.

        multi_scale_features: (f16, f8, f4) of the query frame; memory_readout:
        ``B x K x CV x h x w``; hidden: ``B x K x CH x h x w``. Returns the new hidden state
        (None unless ``update_hidden``), the aggregated logits ``B x (K+1) x H x W`` and
        probabilities ``B x (K+1) x H x W`` (background first) or ``B x K x H x W`` when
        ``strip_background``.
        """
        f16, f8, f4 = multi_scale_features
        new_hidden, logits = self.decoder(f16, f8, f4, hidden, memory_readout, update_hidden=update_hidden)
        logits, prob = soft_aggregate(torch.sigmoid(logits), dim=1)
        if strip_background:
            prob = prob[:, 1:]
        return new_hidden, logits, prob
