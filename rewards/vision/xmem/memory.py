"""XMem's three memories for one video pass (Atkinson-Shiffrin model).

- sensory memory: the hidden state ``1 x K x CH x h x w``, updated every frame by the decoder
  and deeply by the value encoder;
- working memory: the elements (``h*w`` per memory frame) of the first memory frame and the
  recent memory frames, read with a top-k softmax;
- long-term memory: prototypes consolidated from old working memory, read jointly with
  the working memory, pruned by usage when over ``max_long_term_elements``.

One object group: all ``K`` objects are given on the first memory frame.
"""

from __future__ import annotations

import torch

from rewards.vision.xmem.affinity import memory_similarity, read_values, topk_softmax
from rewards.vision.xmem.config import XMemInferenceConfig
from rewards.vision.xmem.memory_store import KeyValueMemoryStore


class XMemMemory:
    """Working / long-term / sensory memory, their reads, writes and consolidation."""

    def __init__(self, config: XMemInferenceConfig) -> None:
        self.config = config
        # working-memory usage drives which elements become prototypes
        self.working = KeyValueMemoryStore(count_usage=config.enable_long_term)
        self.long_term: KeyValueMemoryStore | None = (
            KeyValueMemoryStore(count_usage=config.count_long_term_usage) if config.enable_long_term else None
        )
        self.sensory: torch.Tensor | None = None
        self.elements_per_frame: int | None = None

    @property
    def long_term_engaged(self) -> bool:
        return self.long_term is not None and self.long_term.size > 0

    @property
    def working_frames(self) -> int:
        """Number of memory frames' worth of elements in working memory."""
        return 0 if not self.elements_per_frame else self.working.size // self.elements_per_frame

    def init_sensory(self, num_objects: int, hidden_dim: int, like: torch.Tensor) -> None:
        """Create a zero hidden state ``1 x K x CH x h x w`` (kept if one for K objects exists).

        like: any ``1 x C x h x w`` tensor giving the spatial size, device and dtype.
        """
        if self.sensory is not None and self.sensory.shape[1] == num_objects:
            return
        height, width = like.shape[-2:]
        self.sensory = like.new_zeros((1, num_objects, hidden_dim, height, width))

    def read(self, query_key: torch.Tensor, query_selection: torch.Tensor | None) -> torch.Tensor:
        """Top-k read of long-term + working memory for one query frame; records usage.

        query_key: ``1 x CK x h x w``; query_selection: ``1 x CK x h x w`` or None.
        Returns the readout ``K x CV x h x w``.
        """
        if self.working.size == 0:
            raise RuntimeError("memory is empty: add a memory frame before reading")
        height, width = query_key.shape[-2:]
        stores = [self.long_term, self.working] if self.long_term_engaged else [self.working]
        memory_key = torch.cat([store.key for store in stores], dim=-1)
        memory_shrinkage = torch.cat([store.shrinkage for store in stores], dim=-1)
        memory_value = torch.cat([store.value for store in stores], dim=-1)

        similarity = memory_similarity(
            memory_key,
            memory_shrinkage,
            query_key.flatten(start_dim=2),
            None if query_selection is None else query_selection.flatten(start_dim=2),
        )
        affinity = topk_softmax(similarity, self.config.top_k)  # 1 x N x hw

        usage = affinity.sum(dim=2)[0]  # N
        offset = 0
        for store in stores:
            store.update_usage(usage[offset : offset + store.size])
            offset += store.size

        readout = read_values(affinity, memory_value)  # K x CV x hw
        return readout.view(*readout.shape[:2], height, width)

    def add(
        self,
        key: torch.Tensor,
        shrinkage: torch.Tensor,
        value: torch.Tensor,
        selection: torch.Tensor | None = None,
    ) -> None:
        """Insert one memory frame, then consolidate if the working memory is full.

        key: ``1 x CK x h x w``; shrinkage: ``1 x 1 x h x w``; value: ``1 x K x CV x h x w``;
        selection: ``1 x CK x h x w`` (stored only with long-term memory, for consolidation).
        """
        frame_elements = key.shape[-2] * key.shape[-1]
        if self.elements_per_frame is None:
            self.elements_per_frame = frame_elements
        elif frame_elements != self.elements_per_frame:
            raise ValueError(f"memory frames must keep their size: {frame_elements} != {self.elements_per_frame}")
        if self.working.size and self.working.value.shape[0] != value.shape[1]:
            raise NotImplementedError("objects must all be given on the first memory frame (one object group)")

        keep_selection = self.long_term is not None and selection is not None
        self.working.add(
            key.flatten(start_dim=2),
            shrinkage.flatten(start_dim=2),
            value[0].flatten(start_dim=2),
            selection.flatten(start_dim=2) if keep_selection else None,
        )
        if self.long_term is not None and self.working_frames >= self.config.max_mid_term_frames:
            self.long_term.prune_to(self.config.max_long_term_elements - self.config.num_prototypes)
            self.consolidate()

    def consolidate(self) -> None:
        """Turn the working memory between the first memory frame and the newest
        ``min_mid_term_frames - 1`` frames into long-term prototypes.

        The ``num_prototypes`` most used candidates become prototype keys; their values and
        shrinkages are affinity-weighted averages over all candidates (memory potentiation).
        """
        if self.long_term is None:
            raise RuntimeError("long-term memory is disabled")
        frame = self.elements_per_frame
        start, end = frame, self.working.size - (self.config.min_mid_term_frames - 1) * frame
        if end <= start:
            return
        candidates = self.working.slice(start, end)

        num_prototypes = min(self.config.num_prototypes, end - start)
        chosen = candidates.usage.topk(num_prototypes).indices
        prototype_key = candidates.key[..., chosen]
        prototype_selection = None if candidates.selection is None else candidates.selection[..., chosen]

        similarity = memory_similarity(candidates.key, candidates.shrinkage, prototype_key, prototype_selection)
        affinity = topk_softmax(similarity, top_k=None)  # 1 x n_candidates x P
        prototype_value = read_values(affinity, candidates.value)  # K x CV x P
        prototype_shrinkage = read_values(affinity, candidates.shrinkage)  # 1 x 1 x P

        self.working.remove_range(start, end)
        self.long_term.add(prototype_key, prototype_shrinkage, prototype_value, selection=None)
