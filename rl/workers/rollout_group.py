"""Ray actors around a rollout backend (transformers on CPU, vLLM on GPU).

Prompts are split across the rollout workers in contiguous blocks; each
worker streams its results back group by group (a Ray streaming generator), so
the driver can score finished groups while the rest is generating; outputs
come back in prompt order. Weights arrive bucket by bucket from the actor's
rank 0 (:meth:`update_weights`), then :meth:`finish_weight_update` resets the
engine's caches so no stale prefix / encoder state survives a sync.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence

from rl.config import ModelConfig, RolloutConfig
from rl.placement import PlacementPlan
from rl.workers.group import WorkerGroup, bundle_options


class RolloutActor:
    def __init__(self, cfg: RolloutConfig, model_path: str, model_cfg: ModelConfig, device: str = "cpu",
                 seed: int = 0, torch_threads: int = 1, lora: Any = None):
        import torch

        torch.set_num_threads(torch_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(torch_threads))
        from rl.rollout import build_rollout_backend

        self.backend = build_rollout_backend(cfg, model_path, device=device, dtype=model_cfg.dtype,
                                             attn_implementation=model_cfg.attn_implementation, seed=seed,
                                             lora=lora)   # lora: serve the actor's adapter (vLLM, GPU)

    def generate_stream(self, prompts: list[dict[str, Any]], params: Any, offset: int = 0, announce: bool = False):
        """Ray streaming generator: ``(offset + first prompt index, RolloutOutput piece, seconds
        since the call started)`` for every piece the backend yields (whole response groups).

        ``announce``: first yield ``(offset, None, 0.0)`` as soon as the call runs. The actor runs one
        call at a time, so a weight update sent after that notice waits until this generation ends."""
        start = time.perf_counter()
        if announce:
            yield offset, None, 0.0
        for index, out in self.backend.generate_groups(prompts, params):
            yield offset + index, out, time.perf_counter() - start

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

    def load_sampling_state(self, state: dict[str, int]) -> bool:
        """Set the backend's seed counter (see ``RolloutBackend.sampling_state``)."""
        self.backend.load_sampling_state(state)
        return True

    def ping(self) -> bool:
        return True


class RolloutGroup(WorkerGroup):
    """One :class:`RolloutActor` per bundle of the plan's ``rollout`` role; worker ``i``
    samples with seed ``seed + 1000 * i`` (its own seed stream)."""

    def __init__(self, cfg: RolloutConfig, model_path: str, plan: PlacementPlan, model_cfg: ModelConfig,
                 device: str = "cpu", seed: int = 0, torch_threads: int = 1, lora: Any = None, wait: bool = True):
        options = bundle_options(plan, "rollout")
        if cfg.backend == "vllm" and cfg.vllm_python:  # actors run the vLLM environment's interpreter
            from rl.rollout.vllm_env import rollout_runtime_env

            options = [dict(o, runtime_env=rollout_runtime_env(cfg.vllm_python)) for o in options]
        super().__init__("rollout", RolloutActor, options,
                         lambda i: (cfg, model_path, model_cfg, device, seed + 1000 * i, torch_threads, lora), wait=wait)
        # generate calls sent to each worker = each backend's seed counter (checkpointed by the driver).
        self._seed_calls = [0] * len(self.workers)

    def generate(
        self, prompts: Sequence[dict[str, Any]], params: Any,
        on_groups: Optional[Callable[[int, Any], None]] = None,
        on_start: Optional[Callable[[], None]] = None,
    ) -> tuple[list[Any], float]:
        """Split prompts over the workers in contiguous blocks and stream the results back.

        ``on_groups(first prompt index, RolloutOutput)`` is called for every piece of whole
        response groups (all n responses of its prompts) as soon as a worker has it
        (asynchronous generation: the driver hands each piece to the reward pool while the
        rest is still generating). Returns the pieces in prompt order and the slowest
        worker's seconds.

        ``on_start()`` is called once every worker runs this call (one-step off-policy generation
        sends the next weights only then, so they cannot reach an engine before the call)."""
        import ray

        k = min(len(self.workers), len(prompts))
        bounds = [round(i * len(prompts) / k) for i in range(k + 1)]
        streams = [
            self.workers[i].generate_stream.remote(list(prompts[bounds[i]:bounds[i + 1]]), params, bounds[i],
                                                   *((True,) if on_start is not None else ()))
            for i in range(k)
        ]
        for i in range(k):
            self._seed_calls[i] += 1
        pieces: dict[int, Any] = {}
        busy = [0.0] * k
        live = dict(zip(streams, range(k)))
        not_started = set(range(k)) if on_start is not None else set()
        while live:
            ready, _ = ray.wait(list(live), num_returns=1)
            for stream in ready:
                try:
                    index, out, seconds = ray.get(next(stream))
                except StopIteration:
                    del live[stream]
                    continue
                if out is None:             # a worker's start notice (on_start)
                    not_started.discard(live[stream])
                    if not not_started:
                        on_start()
                    continue
                pieces[index] = out
                busy[live[stream]] = seconds
                if on_groups is not None:
                    on_groups(index, out)
        covered = sum(out.num_prompts for out in pieces.values())
        if covered != len(prompts):
            raise RuntimeError(f"rollout workers returned {covered} prompts' groups for {len(prompts)} prompts")
        return [pieces[i] for i in sorted(pieces)], max(busy)

    def sleep(self) -> None:
        """Free the engines' memory while the actor trains (no-op unless the backend supports sleep)."""
        import ray

        ray.get([w.sleep.remote() for w in self.workers])

    def sampling_state(self) -> dict[str, list[int]]:
        """Each worker's seed counter (``generate`` calls so far), for the trainer state."""
        return {"calls": list(self._seed_calls)}

    def load_sampling_state(self, state: dict[str, list[int]]) -> None:
        """Restore :meth:`sampling_state` into the workers: a resumed run samples with the seeds an
        uninterrupted one would use. Workers beyond the saved ones start at 0 (fresh seed streams)."""
        import ray

        calls = [int(c) for c in state["calls"]][:len(self.workers)]
        self._seed_calls = calls + [0] * (len(self.workers) - len(calls))
        ray.get([w.load_sampling_state.remote({"calls": c}) for w, c in zip(self.workers, self._seed_calls)])
