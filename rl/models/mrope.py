"""Qwen2.5-VL M-RoPE position ids computed by transformers' own ``get_rope_index``.

``Qwen2_5_VLModel.get_rope_index`` needs only two numbers from the model config
(the vision ``spatial_merge_size`` and ``tokens_per_second``), not the weights. The
:class:`MRopeIndexer` carries those two numbers and calls the library function, so
prompt/response batches can be given exactly the positions the model computes
internally (forward with explicit ``position_ids`` == forward without) anywhere,
without a model instance (e.g. where only the processor is at hand).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

__all__ = ["MRopeIndexer", "QWEN25VL_TOKENS_PER_SECOND"]

# Value in every released Qwen2.5-VL config (vision_config.tokens_per_second); only
# affects video inputs.
QWEN25VL_TOKENS_PER_SECOND = 2


class MRopeIndexer:
    """Stand-in ``self`` for ``Qwen2_5_VLModel.get_rope_index`` holding only the config it reads."""

    # The library's functions, used as methods of this light object.
    get_vision_position_ids = Qwen2_5_VLModel.get_vision_position_ids
    _get_rope_index = Qwen2_5_VLModel.get_rope_index

    def __init__(self, spatial_merge_size: int = 2, tokens_per_second: int = QWEN25VL_TOKENS_PER_SECOND):
        self.spatial_merge_size = int(spatial_merge_size)
        self.tokens_per_second = int(tokens_per_second)
        self.config = SimpleNamespace(
            vision_config=SimpleNamespace(
                spatial_merge_size=self.spatial_merge_size, tokens_per_second=self.tokens_per_second
            )
        )

    @property
    def params(self) -> tuple[int, int]:
        return (self.spatial_merge_size, self.tokens_per_second)

    @classmethod
    def from_model_config(cls, config) -> "MRopeIndexer":
        vision = config.vision_config
        return cls(vision.spatial_merge_size, getattr(vision, "tokens_per_second", QWEN25VL_TOKENS_PER_SECOND))

    @classmethod
    def from_processor(cls, processor) -> "MRopeIndexer":
        return cls(processor.image_processor.merge_size, QWEN25VL_TOKENS_PER_SECOND)

    def __call__(
        self,
        input_ids: torch.Tensor,
        mm_token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_grid_thw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Position ids ``(3, B, L)`` (temporal, height, width); 0 on padding.

        input_ids, mm_token_type_ids, attention_mask: ``(B, L)``; image_grid_thw:
        ``(num_images, 3)`` for all images of the batch in row order.
        """
        position_ids, _ = self._get_rope_index(
            input_ids,
            mm_token_type_ids=mm_token_type_ids,
            image_grid_thw=image_grid_thw,
            attention_mask=attention_mask,
        )
        return position_ids
