"""Ray actor groups around :class:`rl.workers.policy.PolicyWorker` (actor, reference, SFT).

One Ray actor per rank; ranks form their own torch process group (gloo on
CPU, NCCL on GPU) through the address of rank 0. The group splits a batch
into equal contiguous shards, one per rank (FSDP2 collectives need every rank
to run the same number of micro-batches), and concatenates results in order.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Sequence

import torch

from rl.placement import PlacementPlan
from rl.workers.ray_actors import kill_actors


class PolicyActor:
    """Body of one rank's Ray actor; holds a PolicyWorker after :meth:`setup`."""

    def __init__(self, rank: int, world_size: int, torch_threads: int = 1):
        torch.set_num_threads(torch_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
        self.rank = rank
        self.world_size = world_size
        self.worker = None

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

    def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, float]:
        """Run ``PolicyWorker.<method>``; returns (result, seconds spent in this process)."""
        start = time.perf_counter()
        out = getattr(self.worker, method)(*args, **kwargs)
        return out, time.perf_counter() - start

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

    def ping(self) -> bool:
        return True


class PolicyGroup:
    """``world_size`` PolicyActor ranks of one role, placed by the placement plan."""

    def __init__(
        self,
        role: str,
        plan: PlacementPlan,
        placement_role: Optional[str] = None,
        torch_threads: int = 1,
        **worker_kwargs: Any,
    ):
        import ray

        placement_role = placement_role or role
        self.role = role
        self.world_size = plan.slots[placement_role].num_workers
        cls = ray.remote(PolicyActor)
        self.workers = [
            cls.options(**plan.actor_options(placement_role, i)).remote(i, self.world_size, torch_threads)
            for i in range(self.world_size)
        ]
        addr, port = ray.get(self.workers[0].address.remote())
        ray.get([w.setup.remote(addr, port, role=role, **worker_kwargs) for w in self.workers])

    # ------------------------------------------------------------ helpers
    def shard(self, items: Any) -> list[Any]:
        """Split a batch (anything with ``split``/``len``, or a tensor) into world_size equal shards."""
        n = len(items)
        if n % self.world_size:
            raise ValueError(f"{self.role}: batch of {n} not divisible by {self.world_size} ranks")
        size = n // self.world_size
        if isinstance(items, torch.Tensor):
            return list(items.split(size))
        return list(items.split(size))

    def call_async(self, method: str, per_rank_args: Sequence[tuple], **kwargs: Any) -> list[Any]:
        return [w.call.remote(method, *args, **kwargs) for w, args in zip(self.workers, per_rank_args)]

    def call_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Same arguments on every rank (collectives such as checkpointing)."""
        import ray

        return [r for r, _ in ray.get([w.call.remote(method, *args, **kwargs) for w in self.workers])]

    @staticmethod
    def gather(futures: Sequence[Any]) -> tuple[list[Any], float]:
        """Results in rank order plus the slowest rank's busy seconds."""
        import ray

        results = ray.get(list(futures))
        return [r for r, _ in results], max(t for _, t in results)

    # ------------------------------------------------------------ API
    def compute_log_prob_async(self, shard_refs: Sequence[Any]) -> list[Any]:
        return self.call_async("compute_log_prob", [(ref,) for ref in shard_refs])

    def push_weights(self, targets: Sequence[Any], bucket_mb: int, checkpoint_names: bool = True) -> tuple[int, float]:
        import ray

        results = ray.get([w.push_weights.remote(targets, bucket_mb, checkpoint_names) for w in self.workers])
        return results[0]

    def shutdown(self) -> None:
        kill_actors(self.workers)
        self.workers = []
