"""Mini-/micro-batch plans that keep every data-parallel rank in lock step.

FSDP2 forwards and backwards are collectives (all-gathers, reduce-scatters), so every rank
must run the same number of them even when the ranks' shards differ in size. The plans
below agree on counts across ranks (one small all-reduce) and mark the padding passes a
rank must run with a zero loss weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rl.workers.fsdp import all_reduce_floats

__all__ = ["MicroBatch", "split_even", "plan_mini_batches", "plan_micro_batches", "max_over_ranks"]


@dataclass(frozen=True)
class MicroBatch:
    """Row indices of one forward/backward pass; ``padding`` passes contribute nothing."""

    rows: list[int]
    padding: bool = False


def max_over_ranks(value: int) -> int:
    """Largest ``value`` over all ranks. Collective."""
    return int(all_reduce_floats([float(value)], op="max")[0])


def split_even(rows: list[int], num_chunks: int) -> list[list[int]]:
    """``rows`` cut into ``num_chunks`` contiguous chunks whose sizes differ by at most one."""
    if num_chunks <= 0:
        raise ValueError(f"num_chunks must be > 0, got {num_chunks}")
    base, extra = divmod(len(rows), num_chunks)
    chunks, start = [], 0
    for i in range(num_chunks):
        size = base + (1 if i < extra else 0)
        chunks.append(rows[start:start + size])
        start += size
    return chunks


def plan_mini_batches(num_rows: int, local_mini_batch_size: int) -> list[list[int]]:
    """This rank's rows split into the common number of mini-batches (max over ranks). Collective."""
    local = max(1, math.ceil(num_rows / max(local_mini_batch_size, 1)))
    return split_even(list(range(num_rows)), max_over_ranks(local))


def plan_micro_batches(rows: list[int], micro_batch_size: int, fallback_row: int = 0) -> list[MicroBatch]:
    """``rows`` in micro-batches of ``micro_batch_size``, padded to the ranks' common count. Collective.

    A padding pass re-uses ``fallback_row`` (any valid row of the shard) with zero weight.
    """
    if micro_batch_size <= 0:
        raise ValueError(f"micro-batch size must be > 0, got {micro_batch_size}")
    micro = [MicroBatch(rows[i:i + micro_batch_size]) for i in range(0, len(rows), micro_batch_size)]
    target = max_over_ranks(max(len(micro), 1))
    while len(micro) < target:
        micro.append(MicroBatch([fallback_row], padding=True))
    return micro
