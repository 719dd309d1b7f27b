"""A flat key/value memory store with usage statistics (XMem's working and long-term memory).

Elements are stacked along the last dimension: key ``1 x CK x N``, shrinkage ``1 x 1 x N``,
selection ``1 x CK x N`` (optional), value ``K x CV x N`` (all objects share each key), and
per-element ``use_count`` / ``life_count`` (``N``). All objects are present in every
element (one object group: all objects are given on the first memory frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# A fresh element's life count (the use/life ratio of an unread element is 0, not 0/0).
_INITIAL_LIFE = 1e-7


@dataclass
class MemorySlice:
    """A contiguous range of elements: key ``1 x CK x n``, shrinkage ``1 x 1 x n``,
    selection ``1 x CK x n`` or None, value ``K x CV x n``, usage ``n`` (or None if not counted)."""

    key: torch.Tensor
    shrinkage: torch.Tensor
    selection: torch.Tensor | None
    value: torch.Tensor
    usage: torch.Tensor | None


class KeyValueMemoryStore:
    """Memory elements plus (optionally) how often each has been read.

    ``usage = use_count / life_count``: the accumulated affinity an element received, divided
    by the number of reads it has been present for.
    """

    def __init__(self, count_usage: bool) -> None:
        self.count_usage = count_usage
        self.key: torch.Tensor | None = None
        self.shrinkage: torch.Tensor | None = None
        self.selection: torch.Tensor | None = None
        self.value: torch.Tensor | None = None
        self.use_count: torch.Tensor | None = None
        self.life_count: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """Number of elements ``N``."""
        return 0 if self.key is None else self.key.shape[-1]

    def add(
        self,
        key: torch.Tensor,
        shrinkage: torch.Tensor,
        value: torch.Tensor,
        selection: torch.Tensor | None = None,
    ) -> None:
        """Append ``n`` elements: key ``1 x CK x n``, shrinkage ``1 x 1 x n``, value ``K x CV x n``,
        selection ``1 x CK x n`` (must be given always or never)."""
        count = key.shape[-1]
        if self.key is not None and (selection is None) != (self.selection is None):
            raise ValueError("selection must be stored for all elements or for none")
        new_use = torch.zeros(count, device=key.device, dtype=torch.float32)
        new_life = torch.full((count,), _INITIAL_LIFE, device=key.device, dtype=torch.float32)
        if self.key is None:
            self.key, self.shrinkage, self.selection, self.value = key, shrinkage, selection, value
            self.use_count, self.life_count = new_use, new_life
            return
        self.key = torch.cat([self.key, key], dim=-1)
        self.shrinkage = torch.cat([self.shrinkage, shrinkage], dim=-1)
        self.value = torch.cat([self.value, value], dim=-1)
        if selection is not None:
            self.selection = torch.cat([self.selection, selection], dim=-1)
        self.use_count = torch.cat([self.use_count, new_use])
        self.life_count = torch.cat([self.life_count, new_life])

    def update_usage(self, usage: torch.Tensor) -> None:
        """Record one read: ``usage`` (``N``) is the affinity each element received, summed over queries."""
        if not self.count_usage or self.key is None:
            return
        self.use_count = self.use_count + usage.reshape(-1).float()
        self.life_count = self.life_count + 1

    def usage(self) -> torch.Tensor:
        """Normalised usage ``use_count / life_count`` (``N``)."""
        if not self.count_usage:
            raise RuntimeError("this memory store does not count usage")
        return self.use_count / self.life_count

    def slice(self, start: int, end: int) -> MemorySlice:
        """Elements ``[start, end)``."""
        return MemorySlice(
            key=self.key[..., start:end],
            shrinkage=self.shrinkage[..., start:end],
            selection=None if self.selection is None else self.selection[..., start:end],
            value=self.value[..., start:end],
            usage=self.usage()[start:end] if self.count_usage else None,
        )

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the elements at ``index`` (long tensor or ``N`` bool mask), in that order."""
        self.key = self.key[..., index]
        self.shrinkage = self.shrinkage[..., index]
        self.value = self.value[..., index]
        if self.selection is not None:
            self.selection = self.selection[..., index]
        self.use_count = self.use_count[index]
        self.life_count = self.life_count[index]

    def remove_range(self, start: int, end: int) -> None:
        """Drop elements ``[start, end)``, keeping the order of the rest."""
        kept = torch.ones(self.size, dtype=torch.bool, device=self.key.device)
        kept[start:end] = False
        self.keep(kept)

    def prune_to(self, max_size: int) -> None:
        """Shrink to at most ``max_size`` elements, dropping the least used ones (the oldest ones
        when usage is not counted). Survivors keep their order.

        With usage, the rule of the released XMem: with ``r = N - max_size`` elements to drop and
        ``u_r`` the r-th smallest usage, exactly the elements with usage ``> u_r`` survive, so every
        element tied with ``u_r`` is dropped too and fewer than ``max_size`` may remain.
        """
        if self.size <= max_size:
            return
        if self.count_usage:
            usage = self.usage()
            cut = usage.kthvalue(self.size - max_size).values
            survivors = usage > cut
        else:
            survivors = torch.arange(self.size - max_size, self.size, device=self.key.device)
        self.keep(survivors)
