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

    def update_policy(self, batch: Any, advantages: torch.Tensor, old_log_probs: Optional[torch.Tensor],
                      ref_log_probs: Optional[torch.Tensor], global_num_tokens: int,
                      global_num_seqs: int) -> tuple[dict[str, float], float]:
        return timed(self.worker.update_policy, batch, advantages, old_log_probs, ref_log_probs,
                     global_num_tokens, global_num_seqs)

    def sft_step(self, batch: Any, global_num_tokens: int) -> tuple[dict[str, float], float]:
        return timed(self.worker.sft_step, batch, global_num_tokens)

    def save_checkpoint(self, directory: str) -> Path:
        return self.worker.save_checkpoint(directory)

    def load_checkpoint(self, directory: str) -> dict[str, Any]:
        return self.worker.load_checkpoint(directory)

    def export_hf(self, out_dir: str) -> Optional[Path]:
        return self.worker.export_hf(out_dir)

    def push_weights(self, targets: Sequence[Any], bucket_mb: int, checkpoint_names: bool = True) -> tuple[int, float]:
        """Gather full weights (a collective: every rank calls this) and stream them, bucket by
        bucket, from rank 0 straight to the rollout workers (never through the driver).

        ``checkpoint_names``: HF checkpoint-file names (what vLLM loads) or the transformers
        module's state-dict names (what the in-process HF backend copies into)."""
        import ray

        start = time.perf_counter()
        sent = 0
        for bucket in self.worker.state_dict_buckets(bucket_mb, checkpoint_names=checkpoint_names):
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
                 **worker_kwargs: Any):
        import ray

        options = bundle_options(plan, placement_role or role)
        world_size = len(options)
        super().__init__(role, PolicyActor, options, lambda rank: (rank, world_size, torch_threads))
        addr, port = ray.get(self.workers[0].address.remote())
        ray.get([w.setup.remote(addr, port, role=role, **worker_kwargs) for w in self.workers])

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

    # ------------------------------------------------------------ training
    def update_policy(self, encoded: Any, advantages: torch.Tensor, old_log_probs: torch.Tensor,
                      ref_log_probs: Optional[torch.Tensor]) -> dict[str, float]:
        """One GRPO update on the whole batch (N sequences, (N, R) tensors), sharded over the
        ranks; returns rank 0's ``actor/*`` metrics (already reduced over the ranks)."""
        num_tokens = int(encoded.response_mask.sum())
        num_seqs = len(encoded)
        refs = self.shard(ref_log_probs) if ref_log_probs is not None else [None] * self.world_size
        futures = [
            w.update_policy.remote(e, a, o, r, num_tokens, num_seqs)
            for w, e, a, o, r in zip(self.workers, self.shard(encoded), self.shard(advantages),
                                     self.shard(old_log_probs), refs)
        ]
        results, _ = self.gather(futures)
        return dict(results[0])

    def sft_step(self, shards: Sequence[Any], num_tokens: int) -> dict[str, float]:
        """One SFT step on one shard per rank (``num_tokens``: response tokens of all shards);
        returns rank 0's ``sft/*`` metrics."""
        results, _ = self.gather([w.sft_step.remote(s, num_tokens) for w, s in zip(self.workers, shards)])
        return dict(results[0])

    # ------------------------------------------------------------ weights and checkpoints
    def push_weights(self, targets: Sequence[Any], bucket_mb: int, checkpoint_names: bool = True) -> tuple[int, float]:
        """Actor -> ``targets`` (rollout actors), bucketed; returns (bytes sent, rank 0's seconds)."""
        import ray

        results = ray.get([w.push_weights.remote(targets, bucket_mb, checkpoint_names) for w in self.workers])
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
