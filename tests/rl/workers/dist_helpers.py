"""Multi-process helpers for the distributed worker tests (spawned ranks, always cleaned up)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.multiprocessing as mp

from rl.config import ActorConfig, LoraConfig, ModelConfig, OptimConfig, SFTConfig

GLOBAL_BATCH = 8
SHARDS = ([0, 1, 2], [3, 4, 5, 6, 7])  # uneven on purpose: exercises the padded micro-batches


def actor_cfg() -> ActorConfig:
    return ActorConfig(ppo_mini_batch_size=16, ppo_micro_batch_size_per_worker=2, kl_loss_coef=0.01,
                       entropy_coeff=1e-3, optim=OptimConfig(lr=1e-3, weight_decay=0.01, grad_clip=1.0))


def sft_cfg() -> SFTConfig:
    return SFTConfig(lr=1e-2, micro_batch_size_per_worker=2, lora=LoraConfig(rank=4, alpha=8), warmup_ratio=0.0)


def global_data(model_dir: str):
    from tests.rl.workers.text_lm import rollout_data

    return rollout_data(model_dir, num=GLOBAL_BATCH, seed=7)


def run_steps(model_dir: str, out_dir: str, rank: int, world_size: int, port: int | None, shard: list[int]) -> None:
    """One rank: old log-probs, one GRPO update, one LoRA SFT step; save results and a checkpoint."""
    from rl.workers.policy import PolicyWorker
    from tests.rl.workers.text_lm import TEXT_HOOKS

    batch, adv, old, ref = global_data(model_dir)
    local = batch.select(shard)
    actor = PolicyWorker(model_dir, ModelConfig(), actor_cfg(), rank, world_size, "127.0.0.1", port,
                         hooks=TEXT_HOOKS, total_steps=2)
    logp = actor.compute_log_prob(local)
    metrics = actor.update_policy(local, adv[shard], old[shard], ref[shard],
                                  global_num_tokens=int(batch.response_mask.sum()), global_num_seqs=GLOBAL_BATCH)
    weights = {n: t for bucket in actor.state_dict_buckets(1, checkpoint_names=False) for n, t in bucket}
    actor.save_checkpoint(str(Path(out_dir) / "actor_ckpt"))

    sft = PolicyWorker(model_dir, ModelConfig(), actor_cfg(), rank, world_size, "127.0.0.1", port, role="sft",
                       sft_cfg=sft_cfg(), hooks=TEXT_HOOKS, total_steps=2, seed=11)
    sft.sft_step(local)
    sft_metrics = sft.sft_step(local)
    sft_weights = {n: t for bucket in sft.state_dict_buckets(1, checkpoint_names=False) for n, t in bucket}
    result = {"logp": logp, "metrics": metrics, "weights": weights, "sft_metrics": sft_metrics,
              "sft_weights": sft_weights}
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


def _spawned_rank(rank: int, world_size: int, port: int, model_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    try:
        run_steps(model_dir, out_dir, rank, world_size, port, SHARDS[rank])
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


# Imported once by the fork server, so the ranks fork with torch / transformers / verl loaded
# instead of paying their import time each.
PRELOAD = ["torch", "transformers", "verl.trainer.ppo.core_algos", "verl.workers.config", "peft",
           "rl.workers.policy", "tests.rl.workers.dist_helpers", "tests.rl.workers.text_lm"]


def spawn_ranks(fn: Callable[..., Any], world_size: int, args: tuple, timeout_s: float = 300.0) -> None:
    """Run ``fn(rank, *args)`` in ``world_size`` fresh processes (forkserver); kill them all on failure or timeout."""
    import multiprocessing

    multiprocessing.set_forkserver_preload(PRELOAD)
    context = mp.start_processes(fn, args=args, nprocs=world_size, join=False, start_method="forkserver")
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"spawned ranks did not finish within {timeout_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
