"""Mini-/micro-batch plans that keep every data-parallel rank in lock step.

FSDP2 forwards and backwards are collectives (all-gathers, reduce-scatters), so every rank
must run the same number of them even when the ranks' shards differ in size. The plans
below agree on counts across ranks (one small all-reduce) and mark the padding passes a
rank must run with a zero loss weight.

With a token budget (``actor.max_tokens_per_micro_batch > 0``) micro-batches hold as many
rows as fit the budget instead of a fixed count: :func:`plan_token_micro_batches` groups rows
of similar length (padded micro-batches, whose cost is rows x the longest prompt + the longest
response after trimming) or balances the rows' token sums (packed micro-batches, whose cost is
the sum of their lengths), and :func:`balanced_rank_rows` gives every rank a similar token load
without moving a sequence to another mini-batch. Regrouping rows inside a mini-batch leaves the
loss unchanged: each micro-batch's loss is its token-loss sum over the mini-batch's global
token count, so the micro-batch losses add up to the same total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from rl.workers.fsdp import all_reduce_floats

__all__ = ["MicroBatch", "split_even", "plan_mini_batches", "plan_micro_batches", "max_over_ranks", "row_lengths",
           "padded_cost", "plan_token_micro_batches", "balanced_rank_rows"]


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


def row_lengths(batch: Any) -> tuple[list[int], list[int]]:
    """Valid prompt and response tokens per row: two lists of ``len(batch)`` ints.

    Uses ``batch.row_lengths()`` when the batch has it (:class:`rl.models.encoded_batch.EncodedBatch`),
    else ``attention_mask.sum(-1) - response_mask.sum(-1)`` and ``response_mask.sum(-1)``.
    """
    if hasattr(batch, "row_lengths"):
        prompt, response = batch.row_lengths()
    else:
        response = batch.response_mask.sum(-1)
        mask = getattr(batch, "attention_mask", None)
        prompt = mask.sum(-1) - response if mask is not None else torch.zeros_like(response)
    return [int(x) for x in prompt.tolist()], [int(x) for x in response.tolist()]


def padded_cost(rows: Sequence[int], prompt: Sequence[int], response: Sequence[int]) -> int:
    """Tokens of one padded micro-batch after trimming: ``len(rows) * (max prompt + max response)``."""
    if not rows:
        return 0
    return len(rows) * (max(prompt[i] for i in rows) + max(response[i] for i in rows))


def _sorted_groups(rows: list[int], prompt: Sequence[int], response: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Rows by decreasing length, cut greedily into groups whose padded cost fits ``max_tokens``
    (a row longer than the budget alone). Groups of similar length waste little padding."""
    order = sorted(rows, key=lambda i: (-(prompt[i] + response[i]), i))
    groups: list[list[int]] = []
    for i in order:
        if groups and padded_cost(groups[-1] + [i], prompt, response) <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _first_fit(rows: list[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """First-fit decreasing bins of summed ``lengths`` <= ``max_tokens`` (a longer row alone)."""
    bins: list[list[int]] = []
    loads: list[int] = []
    for i in sorted(rows, key=lambda j: (-lengths[j], j)):
        for b, load in enumerate(loads):
            if load + lengths[i] <= max_tokens:
                bins[b].append(i)
                loads[b] += lengths[i]
                break
        else:
            bins.append([i])
            loads.append(lengths[i])
    return bins


def _balanced_bins(rows: list[int], lengths: Sequence[int], max_tokens: int, count: int) -> list[list[int]] | None:
    """``rows`` in ``count`` bins of balanced token sums (verl's Karmarkar-Karp partition), or None
    when a bin of two or more rows would exceed ``max_tokens``."""
    from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions

    if count > len(rows):
        return None
    parts = get_seqlen_balanced_partitions([lengths[i] for i in rows], count, equal_size=False)
    bins = [[rows[j] for j in part] for part in parts]
    if any(len(b) > 1 and sum(lengths[i] for i in b) > max_tokens for b in bins):
        return None
    return bins


def plan_token_micro_batches(rows: list[int], prompt: Sequence[int], response: Sequence[int], max_tokens: int,
                             packed: bool, fallback_row: int = 0) -> list[MicroBatch]:
    """``rows`` (indices into ``prompt`` / ``response``, the rows' valid token counts) in
    micro-batches of at most ``max_tokens`` tokens, padded to the ranks' common count. Collective.

    ``packed=False``: padded micro-batches, cost :func:`padded_cost`; rows sorted by length and
    cut greedily. ``packed=True``: packed micro-batches, cost = the sum of the rows' lengths;
    every rank uses the largest first-fit-decreasing count over the ranks and balances its token
    sums over that many micro-batches (no padding passes) when each still fits the budget, else
    keeps its first-fit bins. A row longer than the budget gets a micro-batch of its own.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
    if packed:
        lengths = [p + r for p, r in zip(prompt, response)]
        groups = _first_fit(rows, lengths, max_tokens)
        target = max_over_ranks(max(len(groups), 1))
        if target > len(groups):
            groups = _balanced_bins(rows, lengths, max_tokens, target) or groups
    else:
        groups = _sorted_groups(rows, prompt, response, max_tokens)
        target = max_over_ranks(max(len(groups), 1))
    micro = [MicroBatch(g) for g in groups]
    while len(micro) < target:
        micro.append(MicroBatch([fallback_row], padding=True))
    return micro


def balanced_rank_rows(lengths: Sequence[int], world_size: int, local_mini_batch_size: int) -> list[list[int]]:
    """Rows of a global batch for each rank: equal counts, similar token sums, same mini-batches.

    The plain split gives rank ``r`` the contiguous rows ``[r*S, (r+1)*S)`` (``S = N / world_size``),
    and the worker cuts its shard into :func:`plan_mini_batches` chunks; global mini-batch ``j`` is
    the union of the ranks' ``j``-th chunks. Here each global mini-batch is re-split over the ranks
    into parts of the same sizes with balanced token sums (verl's Karmarkar-Karp partition), the
    heaviest part going to the rank with the least load so far (one part per rank); rank ``r``'s rows are its parts in
    mini-batch order. So every sequence stays in its mini-batch (the loss and the optimizer steps
    are those of the plain split) while the ranks' forward/backward work evens out.

    Args:
        lengths: ``(N,)`` token count per row; N divisible by ``world_size``.
        local_mini_batch_size: rows per rank and mini-batch (as the worker computes it).
    """
    from verl.utils.seqlen_balancing import get_seqlen_balanced_partitions

    n = len(lengths)
    if world_size <= 0 or n % world_size:
        raise ValueError(f"{n} rows do not split evenly over {world_size} ranks")
    shard = n // world_size
    chunks = split_even(list(range(shard)), max(1, math.ceil(shard / max(local_mini_batch_size, 1))))
    per_rank: list[list[int]] = [[] for _ in range(world_size)]
    load = [0] * world_size
    for chunk in chunks:
        if not chunk:
            continue
        members = [r * shard + i for r in range(world_size) for i in chunk]
        parts = get_seqlen_balanced_partitions([lengths[i] for i in members], world_size, equal_size=True)
        parts = sorted(([members[j] for j in part] for part in parts), key=lambda p: -sum(lengths[i] for i in p))
        lightest_first = sorted(range(world_size), key=lambda r: (load[r], r))
        for rank, part in zip(lightest_first, parts):   # one part per rank and mini-batch
            per_rank[rank].extend(part)
            load[rank] += sum(lengths[i] for i in part)
    return per_rank
