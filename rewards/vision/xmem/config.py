"""Inference settings of XMem's memory scheme (defaults = the XMem release's evaluation defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class XMemInferenceConfig:
    """How an :class:`~rewards.vision.xmem.inference.XMemInferenceCore` reads and writes memory.

    mem_every: a frame is inserted into working memory every ``mem_every`` frames
        (and always when masks are given with it).
    deep_update_every: period of the deep hidden-state update (value-encoder GRU);
        negative = synchronised with memory insertion.
    top_k: number of memory elements each query pixel attends to (None = all).
    enable_long_term: consolidate old working memory into long-term prototypes.
    count_long_term_usage: count how often long-term elements are read, so that the
        least used ones are pruned first (otherwise the oldest ones are pruned).
    min_mid_term_frames / max_mid_term_frames: the working memory is consolidated when it
        holds ``max`` memory frames; ``min`` remain afterwards (the first memory frame,
        which is never consolidated, and the newest ``min - 1``).
    max_long_term_elements: cap on long-term memory elements.
    num_prototypes: long-term prototypes created per consolidation.
    """

    mem_every: int = 5
    deep_update_every: int = -1
    top_k: int | None = 30
    enable_long_term: bool = True
    count_long_term_usage: bool = True
    min_mid_term_frames: int = 5
    max_mid_term_frames: int = 10
    max_long_term_elements: int = 10000
    num_prototypes: int = 128

    def __post_init__(self) -> None:
        if self.mem_every < 1:
            raise ValueError(f"mem_every must be >= 1, got {self.mem_every}")
        if self.deep_update_every == 0:
            raise ValueError("deep_update_every must be negative (synchronised) or >= 1, got 0")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be None or >= 1, got {self.top_k}")
        if not 1 <= self.min_mid_term_frames < self.max_mid_term_frames:
            raise ValueError(
                "need 1 <= min_mid_term_frames < max_mid_term_frames, got "
                f"{self.min_mid_term_frames} and {self.max_mid_term_frames}"
            )
        if not 1 <= self.num_prototypes <= self.max_long_term_elements:
            raise ValueError(
                "need 1 <= num_prototypes <= max_long_term_elements, got "
                f"{self.num_prototypes} and {self.max_long_term_elements}"
            )

    @property
    def deep_update_synchronised(self) -> bool:
        """True when the deep update happens exactly at memory insertions."""
        return self.deep_update_every < 0
