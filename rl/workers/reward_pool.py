"""Reward pool: Ray actors that score GRPO groups, with restart-and-retry.

Each :class:`RewardWorker` holds the reward recipe's frozen models (the
segmenter for mask-IoU terms, the propagator for temporal terms), built once
per worker. The driver submits one task per GRPO group (the n responses share
one ground truth, so a segmenter encodes the keyframe once) as soon as the
rollout workers stream that group back, and collects the results later, so
reward work overlaps the rest of generation and the reference / old-log-prob
phases.

A worker that dies or does not answer within ``reward.timeout_s`` is killed,
restarted and its groups resubmitted; after ``reward.max_retries`` failed
attempts a group's samples are kept with score 0 and ``reward_failed = 1``
(counted in ``reward/failed``), so a step always completes with every sample
scored or explicitly marked. A sample the reward cannot score (its ground truth lacks
a key, a user reward returns the wrong keys: :data:`rewards.errors.DETERMINISTIC_ERRORS`)
is not retried: the run stops naming the reward, the sample id and the key, or with
``reward.on_invalid_sample = skip`` its group is scored 0 and marked ``invalid_sample``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from rewards.errors import InvalidSampleError
from rl.config import RewardConfig
from rl.workers.group import WorkerGroup

log = logging.getLogger(__name__)


class RewardWorker:
    """Scores groups of responses with the run's reward (runs inside a Ray actor): the built-in
    ``reward.name`` with the models it declares it needs, or the user reward ``reward.function``
    loaded from its file in this process (:class:`rewards.scorer.RewardScorer`)."""

    def __init__(self, cfg: RewardConfig, torch_threads: int = 1):
        import torch

        from rewards.scorer import RewardScorer

        torch.set_num_threads(torch_threads)
        self.cfg = cfg
        self.scorer = RewardScorer.from_config(cfg)

    def ping(self) -> bool:
        return True

    def score_group(
        self, responses: Sequence[str], sample: dict[str, Any], response_lengths: Sequence[int]
    ) -> tuple[list[dict[str, float]], float]:
        """Component dicts of the group's responses and the seconds this worker spent. ``sample``:
        the training record the group answers (or a bare ground truth). A sample the reward cannot
        score raises :class:`rewards.errors.InvalidSampleError` (not retried by the pool)."""
        start = time.perf_counter()
        scores = self.scorer.score_group(list(responses), sample, list(response_lengths))
        return scores, time.perf_counter() - start


@dataclass
class GroupTask:
    responses: list[str]
    sample: dict[str, Any]  # the training record (its "ground_truth", "id", ...) or a bare ground truth
    response_lengths: list[int]
    index: int = 0          # position of the group in the step's batch
    attempts: int = 0
    result: Optional[list[dict[str, float]]] = None
    worker: int = -1
    generation: int = 0     # restart count of the worker when dispatched
    future: Any = None
    submitted_at: float = 0.0


@dataclass
class PendingScores:
    tasks: list[GroupTask]
    restarts: int = 0
    failures: int = 0
    busy_s: float = 0.0      # reward-worker compute time summed over groups
    invalid: int = 0         # samples skipped as invalid (reward.on_invalid_sample = skip)


class RewardPool(WorkerGroup):
    """A set of :class:`RewardWorker` Ray actors, worker ``i`` with ``actor_options[i]`` (its
    bundle of the placement plan's ``reward`` role). Workers are independent, so a dead or
    stuck one is restarted on its own (:meth:`WorkerGroup.restart`).

    Thread-safe: with one-step off-policy generation (:mod:`rl.off_policy`) the next step's groups
    are submitted from the generation thread while the driver collects this step's; a lock keeps
    the worker choice, the restart generations and the worker handles consistent."""

    restartable = True

    def __init__(self, cfg: RewardConfig, actor_options: Sequence[dict[str, Any]], wait: bool = True):
        from rewards.scorer import with_resolved_function

        cfg = with_resolved_function(cfg)   # workers may run in another folder
        self.cfg = cfg
        super().__init__("reward", RewardWorker, actor_options, lambda i: (cfg,), wait=wait)
        self._next = 0
        self._lock = threading.RLock()

    def _dispatch(self, task: GroupTask) -> None:
        with self._lock:
            index = self._next % len(self.workers)
            self._next += 1
            task.worker = index
            task.generation = self.generations[index]
            task.attempts += 1
            task.submitted_at = time.monotonic()
            task.future = self.workers[index].score_group.remote(task.responses, task.sample, task.response_lengths)

    def submit(self, groups: Sequence[tuple[list[str], dict[str, Any], list[int]]],
               pending: Optional[PendingScores] = None, first_index: int = 0) -> PendingScores:
        """Start scoring; returns at once. ``groups``: (responses, training record or bare ground
        truth, response token counts). Groups can arrive piece by piece while a step's rollouts
        are still generating: pass the ``pending`` of the first call and each piece's position in
        the batch (``first_index``); :meth:`collect` returns the groups in position order."""
        pending = PendingScores([]) if pending is None else pending
        for offset, (responses, gt, lengths) in enumerate(groups):
            task = GroupTask(list(responses), gt, list(lengths), index=first_index + offset)
            if any(t.index == task.index for t in pending.tasks):
                raise ValueError(f"reward group {task.index} was submitted twice")
            pending.tasks.append(task)
            self._dispatch(task)
        return pending

    def collect(self, pending: PendingScores) -> list[list[dict[str, float]]]:
        """Block until every group is scored or marked failed; one list of component dicts per group."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        while True:
            waiting = [t for t in pending.tasks if t.result is None]
            if not waiting:
                break
            ready, _ = ray.wait([t.future for t in waiting], num_returns=1, timeout=1.0)
            now = time.monotonic()
            for task in waiting:
                done = any(task.future == r for r in ready)
                timed_out = not done and now - task.submitted_at > self.cfg.timeout_s
                if not done and not timed_out:
                    continue
                try:
                    if timed_out:
                        raise GetTimeoutError(f"reward worker {task.worker} timed out after {self.cfg.timeout_s}s")
                    task.result, seconds = ray.get(task.future)
                    pending.busy_s += seconds
                except (RayActorError, GetTimeoutError, RayTaskError) as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(exc, RayTaskError) and isinstance(cause, InvalidSampleError):
                        self._handle_invalid(task, cause, pending)
                    else:
                        self._handle_failure(task, exc, pending, restart=not isinstance(exc, RayTaskError))
        ordered = sorted(pending.tasks, key=lambda t: t.index)
        if [t.index for t in ordered] != list(range(len(ordered))):
            raise ValueError(f"reward groups {[t.index for t in ordered]} do not cover positions 0..{len(ordered) - 1}")
        return [t.result for t in ordered]  # type: ignore[misc]

    def _handle_failure(self, task: GroupTask, exc: Exception, pending: PendingScores, restart: bool) -> None:
        log.warning("reward group failed on worker %d (attempt %d): %s", task.worker, task.attempts, exc)
        # Several groups may have been on the same dead worker: restart it only once.
        with self._lock:
            if restart and task.generation == self.generations[task.worker]:
                self.restart(task.worker)
                pending.restarts += 1
        if task.attempts <= self.cfg.max_retries:
            self._dispatch(task)
            return
        pending.failures += 1
        task.result = [{"score": 0.0, "reward_failed": 1.0} for _ in task.responses]

    def _handle_invalid(self, task: GroupTask, exc: InvalidSampleError, pending: PendingScores) -> None:
        """A sample the reward cannot score fails the same way on every worker: never retried. With
        ``reward.on_invalid_sample = error`` the run stops here (the error names the reward, the sample
        id and the key); with ``skip`` the group scores 0 with ``invalid_sample = 1`` on each response
        (logged as ``reward/invalid_sample``, the fraction of the step's samples skipped)."""
        if self.cfg.on_invalid_sample != "skip":
            raise InvalidSampleError(exc.reward, exc.sample_id, exc.detail, exc.key) from None
        log.warning("reward: skipping an invalid sample (reward.on_invalid_sample=skip): %s", exc)
        pending.invalid += len(task.responses)
        task.result = [{"score": 0.0, "invalid_sample": 1.0} for _ in task.responses]
