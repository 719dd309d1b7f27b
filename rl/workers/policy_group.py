"""Ray worker groups around :class:`rl.workers.policy.PolicyWorker` (actor, reference, SFT).

One Ray actor per rank; ranks form their own torch process group (gloo on
CPU, NCCL on GPU) through the address of rank 0. The group splits a batch
into equal contiguous shards, one per rank (FSDP2 collectives need every rank
to run the same number of micro-batches), and concatenates results in order.
Every method that touches the model is a collective: it runs on every rank.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from rl.placement import PlacementPlan
from rl.workers.group import WorkerGroup, bundle_options, timed


class PolicyActor:
    """Body of one rank's Ray actor; holds a PolicyWorker after :meth:`setup`."""

    def __init__(self, rank: int, world_size: int, torch_threads: int = 1):
        torch.set_num_threads(torch_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
        self.rank = rank
        self.world_size = world_size
        self.worker = None

    def ping(self) -> bool:
        return True

    def address(self) -> tuple[str, int]:
        import ray

        from rl.workers.fsdp import free_port

        return ray.util.get_node_ip_address(), free_port()

    def setup(self, master_addr: str, master_port: int, **kwargs: Any) -> bool:
        from rl.workers.policy import PolicyWorker

        self.worker = PolicyWorker(
            rank=self.rank, world_size=self.world_size, master_addr=master_addr, master_port=master_port, **kwargs
        )
        return True

    # Timed calls return (result, seconds spent in this process) for WorkerGroup.gather.
    def compute_log_prob(self, batch: Any) -> tuple[torch.Tensor, float]:
        return timed(self.worker.compute_log_prob, batch)

    def compute_ref_log_prob(self, batch: Any) -> tuple[torch.Tensor, float]:
        return timed(self.worker.compute_ref_log_prob, batch)

    def parameter_counts(self) -> dict[str, int]:
        return self.worker.parameter_counts()

    def update_policy(self, batch: Any, advantages: torch.Tensor, old_log_probs: Optional[torch.Tensor],
                      ref_log_probs: Optional[torch.Tensor], global_num_tokens: int,
                      global_num_seqs: int, **correction: torch.Tensor) -> tuple[dict[str, float], float]:
        return timed(self.worker.update_policy, batch, advantages, old_log_probs, ref_log_probs,
                     global_num_tokens, global_num_seqs, **correction)

    def sft_step(self, batch: Any, global_num_tokens: int) -> tuple[dict[str, float], float]:
        return timed(self.worker.sft_step, batch, global_num_tokens)

    def save_checkpoint(self, directory: str) -> Path:
        return self.worker.save_checkpoint(directory)

    def load_checkpoint(self, directory: str) -> dict[str, Any]:
        return self.worker.load_checkpoint(directory)

    def export_hf(self, out_dir: str) -> Optional[Path]:
        return self.worker.export_hf(out_dir)

    def push_weights(self, targets: Sequence[Any], bucket_mb: int, checkpoint_names: bool = True,
                     adapter: bool = False) -> tuple[int, float]:
        """Gather full weights (a collective: every rank calls this) and stream them, bucket by
        bucket, from rank 0 straight to the rollout workers (never through the driver).

        ``checkpoint_names``: HF checkpoint-file names (what vLLM loads) or the transformers
        module's state-dict names (what the in-process HF backend copies into). ``adapter``: a LoRA
        actor sends its adapter only (peft names; vLLM's LoRA serving), not merged weights."""
        import ray

        start = time.perf_counter()
        sent = 0
        buckets = (self.worker.adapter_buckets(bucket_mb) if adapter
                   else self.worker.state_dict_buckets(bucket_mb, checkpoint_names=checkpoint_names))
        for bucket in buckets:
            if self.rank == 0:
                ref = ray.put(bucket)
                ray.get([t.update_weights.remote(ref) for t in targets])
                sent += sum(t.numel() * t.element_size() for _, t in bucket)
        if self.rank == 0:
            ray.get([t.finish_weight_update.remote() for t in targets])
        return sent, time.perf_counter() - start


class PolicyGroup(WorkerGroup):
    """``world_size`` PolicyActor ranks of one role, placed by the placement plan.

    Args:
        role: ``"actor"``, ``"reference"`` or ``"sft"`` (passed to the workers).
        plan: a created placement plan; placement_role: its role whose bundles the ranks use
            (default ``role``).
        worker_kwargs: :class:`rl.workers.policy.PolicyWorker` arguments.
    """

    def __init__(self, role: str, plan: PlacementPlan, placement_role: Optional[str] = None, torch_threads: int = 1,
                 wait: bool = True, **worker_kwargs: Any):
        options = bundle_options(plan, placement_role or role)
        world_size = len(options)
        super().__init__(role, PolicyActor, options, lambda rank: (rank, world_size, torch_threads), wait=False)
        self.worker_kwargs = worker_kwargs
        self._setup: Optional[list[Any]] = None
        if wait:
            self.ready()

    def start_setup(self) -> None:
        """Start every rank's set-up (process group, model, optimizer) without waiting; needs only
        rank 0 to be up (its address). Does nothing the second time."""
        import ray

        if self._setup is None:
            addr, port = ray.get(self.workers[0].address.remote())
            self._setup = [w.setup.remote(addr, port, role=self.name, **self.worker_kwargs) for w in self.workers]

    def ready(self) -> None:
        """Wait until every rank is set up (raises the Ray error of a rank that failed)."""
        import ray

        self.start_setup()
        ray.get(self._setup)

    @property
    def world_size(self) -> int:
        return len(self.workers)

    def shard(self, items: Any) -> list[Any]:
        """Split a batch (an :class:`rl.models.encoded_batch.EncodedBatch` or an (N, ...) tensor)
        into ``world_size`` equal contiguous shards of N / world_size rows."""
        n = len(items)
        if n % self.world_size:
            raise ValueError(f"{self.name}: batch of {n} not divisible by {self.world_size} ranks")
        return list(items.split(n // self.world_size))

    # ------------------------------------------------------------ log-probs
    def compute_log_prob_async(self, shards: Sequence[Any]) -> list[Any]:
        """Start the log-probs of each rank's shard (one per rank, e.g. object refs); returns the
        futures for :meth:`collect_log_probs`."""
        return [w.compute_log_prob.remote(s) for w, s in zip(self.workers, shards)]

    def collect_log_probs(self, futures: Sequence[Any]) -> tuple[torch.Tensor, float]:
        """The (N, R) log-probs of the whole batch (rank shards in order) and the slowest rank's seconds."""
        parts, busy = self.gather(futures)
        return torch.cat(parts), busy

    def split_for_log_probs(self, encoded: Any) -> tuple[list[Any], Optional[list[int]]]:
        """The rank shards of a log-prob pass and the row order they follow (None: batch order).

        With an actor token budget on several ranks the rows are first reordered so that the
        ranks' token sums are balanced (a forward pass has no mini-batches to keep, so the whole
        batch is one partition); :class:`PendingLogProbs` puts the results back in batch order."""
        order = self._token_balanced_order(encoded, len(encoded) // max(self.world_size, 1))
        return self.shard(encoded if order is None else encoded.select(order)), order

    def compute_ref_log_prob_async(self, shards: Sequence[Any]) -> list[Any]:
        """Like :meth:`compute_log_prob_async` with the LoRA adapters disabled (the base model)."""
        return [w.compute_ref_log_prob.remote(s) for w, s in zip(self.workers, shards)]

    def parameter_counts(self) -> dict[str, int]:
        """``{"trainable", "total"}`` parameters of the policy (rank 0's view; the counts are global)."""
        import ray

        return ray.get(self.workers[0].parameter_counts.remote())

    # ------------------------------------------------------------ training
    def update_policy(self, encoded: Any, advantages: torch.Tensor, old_log_probs: torch.Tensor,
                      ref_log_probs: Optional[torch.Tensor], **correction: torch.Tensor) -> dict[str, float]:
        """One GRPO update on the whole batch (N sequences, (N, R) tensors), sharded over the
        ranks; returns rank 0's ``actor/*`` metrics (already reduced over the ranks).
        ``correction``: the rollout correction's (N, R) ``loss_mask`` / ``rollout_is_weights``
        (:func:`rl.rollout_corr.update_kwargs`), sharded like the rest."""
        order = self.balanced_order(encoded)   # None: the plain contiguous split
        if order is not None:
            encoded, advantages, old_log_probs = encoded.select(order), advantages[order], old_log_probs[order]
            ref_log_probs = None if ref_log_probs is None else ref_log_probs[order]
            correction = {k: t[order] for k, t in correction.items()}
        num_tokens = int(correction.get("loss_mask", encoded.response_mask).sum())
        num_seqs = len(encoded)
        refs = self.shard(ref_log_probs) if ref_log_probs is not None else [None] * self.world_size
        extra = [dict(zip(correction, parts)) for parts in zip(*(self.shard(t) for t in correction.values()))]
        futures = [
            w.update_policy.remote(e, a, o, r, num_tokens, num_seqs, **x)
            for w, e, a, o, r, x in zip(self.workers, self.shard(encoded), self.shard(advantages),
                                        self.shard(old_log_probs), refs, extra or [{}] * self.world_size)
        ]
        results, _ = self.gather(futures)
        return dict(results[0])

    def balanced_order(self, encoded: Any) -> Optional[list[int]]:
        """With an actor token budget (``actor.max_tokens_per_micro_batch > 0``) on several ranks: a
        row order whose contiguous split gives the ranks similar token loads and keeps every
        sequence in its mini-batch (:func:`rl.workers.batching.balanced_rank_rows`); else None."""
        actor_cfg = self.worker_kwargs.get("actor_cfg")
        if self.name != "actor" or actor_cfg is None:
            return None
        local_mini = max(1, actor_cfg.ppo_mini_batch_size * self.worker_kwargs.get("rollout_n", 1) // self.world_size)
        return self._token_balanced_order(encoded, local_mini)

    def _token_balanced_order(self, encoded: Any, local_mini_batch_size: int) -> Optional[list[int]]:
        """:func:`rl.workers.batching.balanced_rank_rows` flattened, when a token budget is set on
        several ranks (``actor.max_tokens_per_micro_batch > 0``); else None (the plain split)."""
        actor_cfg = self.worker_kwargs.get("actor_cfg")
        if self.world_size == 1 or actor_cfg is None or actor_cfg.max_tokens_per_micro_batch <= 0:
            return None
        from rl.workers.batching import balanced_rank_rows, row_lengths

        prompt, response = row_lengths(encoded)
        per_rank = balanced_rank_rows([p + r for p, r in zip(prompt, response)], self.world_size,
                                      max(1, local_mini_batch_size))
        return [i for rows in per_rank for i in rows]

    def sft_step(self, shards: Sequence[Any], num_tokens: int) -> dict[str, float]:
        """One SFT step on one shard per rank (``num_tokens``: response tokens of all shards);
        returns rank 0's ``sft/*`` metrics."""
        results, _ = self.gather([w.sft_step.remote(s, num_tokens) for w, s in zip(self.workers, shards)])
        return dict(results[0])

    # ------------------------------------------------------------ weights and checkpoints
    def push_weights(self, targets: Sequence[Any], bucket_mb: int, checkpoint_names: bool = True,
                     adapter: bool = False) -> tuple[int, float]:
        """Actor -> ``targets`` (rollout actors), bucketed; returns (bytes sent, rank 0's seconds).
        ``adapter``: the LoRA adapter only (see :meth:`PolicyActor.push_weights`)."""
        import ray

        results = ray.get([w.push_weights.remote(targets, bucket_mb, checkpoint_names, adapter) for w in self.workers])
        return results[0]

    def save_checkpoint(self, directory: str) -> None:
        """Model + optimizer into ``directory`` (DCP, every rank writes its part)."""
        import ray

        ray.get([w.save_checkpoint.remote(directory) for w in self.workers])

    def load_checkpoint(self, directory: str) -> None:
        import ray

        ray.get([w.load_checkpoint.remote(directory) for w in self.workers])

    def export_hf(self, out_dir: str) -> str:
        """Full weights as a Hugging Face folder (written by rank 0); returns its path."""
        import ray

        paths = ray.get([w.export_hf.remote(out_dir) for w in self.workers])
        return str(next(p for p in paths if p))


class AdapterOffReference:
    """The reference role of a LoRA run (``actor.lora.rank > 0``): the actor's own ranks compute the
    reference log-probs with the adapters disabled (the frozen base model), so no second copy of the
    model is placed. Offers what the driver asks of a reference group."""

    name = "reference"

    def __init__(self, actor: PolicyGroup):
        self.actor = actor

    @property
    def world_size(self) -> int:
        return self.actor.world_size

    def shard(self, items: Any) -> list[Any]:
        return self.actor.shard(items)

    def start_setup(self) -> None:
        """Nothing to start: the actor group starts (and is waited for) as itself."""

    def ready(self) -> None:
        """Nothing to wait for: the actor group is waited for as itself."""

    def split_for_log_probs(self, encoded: Any) -> tuple[list[Any], Optional[list[int]]]:
        return self.actor.split_for_log_probs(encoded)

    def compute_log_prob_async(self, shards: Sequence[Any]) -> list[Any]:
        return self.actor.compute_ref_log_prob_async(shards)

    def collect_log_probs(self, futures: Sequence[Any]) -> tuple[torch.Tensor, float]:
        return self.actor.collect_log_probs(futures)

    def shutdown(self) -> None:
        """Nothing to stop: the actor group is shut down as itself."""


@dataclass
class PendingLogProbs:
    """A log-prob pass running on a group's ranks.

    Attributes:
        group: the group (its ``collect_log_probs`` gathers the rank results).
        futures: one per rank, from ``compute_log_prob_async``.
        order: the batch rows the shards hold, in shard order (from ``split_for_log_probs``;
            None: batch order).
    """

    group: Any
    futures: list[Any]
    order: Optional[list[int]] = None

    def collect(self) -> tuple[torch.Tensor, float]:
        """The (N, R) log-probs in batch order and the slowest rank's seconds."""
        values, busy = self.group.collect_log_probs(self.futures)
        if self.order is None:
            return values, busy
        restored = torch.empty_like(values)
        restored[torch.as_tensor(self.order)] = values
        return restored, busy
