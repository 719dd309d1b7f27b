"""Ray actors around a rollout backend (transformers on CPU, vLLM on GPU).

Prompts are split across the rollout workers in contiguous blocks; outputs
come back in prompt order. Weights arrive bucket by bucket from the actor's
rank 0 (:meth:`update_weights`), then :meth:`finish_weight_update` resets the
engine's caches so no stale prefix / encoder state survives a sync.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from rl.config import ModelConfig, RolloutConfig
from rl.placement import PlacementPlan
from rl.workers.ray_actors import kill_actors


class RolloutActor:
    def __init__(self, cfg: RolloutConfig, model_path: str, model_cfg: ModelConfig, device: str = "cpu",
                 seed: int = 0, torch_threads: int = 1):
        import torch

        torch.set_num_threads(torch_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
        from rl.rollout import build_rollout_backend

        self.backend = build_rollout_backend(cfg, model_path, device=device, dtype=model_cfg.dtype,
                                             attn_implementation=model_cfg.attn_implementation, seed=seed)

    def generate(self, prompts: list[dict[str, Any]], params: Any) -> tuple[Any, float]:
        start = time.perf_counter()
        out = self.backend.generate(prompts, params)
        return out, time.perf_counter() - start

    def update_weights(self, bucket: list[tuple[str, Any]]) -> bool:
        self.backend.update_weights(iter(bucket))
        return True

    def finish_weight_update(self) -> bool:
        self.backend.reset_caches()
        return True

    def sleep(self) -> bool:
        if getattr(self.backend, "supports_sleep", False):
            self.backend.sleep()
        return True

    def wake(self) -> bool:
        if getattr(self.backend, "supports_sleep", False):
            self.backend.wake()
        return True

    def ping(self) -> bool:
        return True


class RolloutGroup:
    def __init__(self, cfg: RolloutConfig, model_path: str, plan: PlacementPlan, model_cfg: ModelConfig,
                 device: str = "cpu", seed: int = 0, torch_threads: int = 1):
        import ray

        n = plan.slots["rollout"].num_workers
        cls = ray.remote(RolloutActor)
        options = [plan.actor_options("rollout", i) for i in range(n)]
        if cfg.backend == "vllm" and cfg.vllm_python:  # actors run the vLLM environment's interpreter
            from rl.rollout.vllm_env import rollout_runtime_env

            options = [dict(o, runtime_env=rollout_runtime_env(cfg.vllm_python)) for o in options]
        # Each worker gets its own sampling seed stream.
        self.workers = [
            cls.options(**options[i]).remote(cfg, model_path, model_cfg, device, seed + 1000 * i, torch_threads)
            for i in range(n)
        ]
        ray.get([w.ping.remote() for w in self.workers])

    def generate(self, prompts: Sequence[dict[str, Any]], params: Any) -> tuple[list[Any], float]:
        """Split prompts over the workers; returns the per-worker outputs in prompt order and the
        slowest worker's seconds."""
        import ray

        k = min(len(self.workers), len(prompts))
        bounds = [round(i * len(prompts) / k) for i in range(k + 1)]
        futures = [
            self.workers[i].generate.remote(list(prompts[bounds[i] : bounds[i + 1]]), params) for i in range(k)
        ]
        results = ray.get(futures)
        return [r for r, _ in results], max(t for _, t in results)

    def sleep(self) -> None:
        """Free the engines' memory while the actor trains (no-op unless the backend supports sleep)."""
        import ray

        ray.get([w.sleep.remote() for w in self.workers])

    def shutdown(self) -> None:
        kill_actors(self.workers)
        self.workers = []
