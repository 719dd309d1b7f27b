"""The base of every Ray worker group: the policy ranks, the rollout engines, the reward pool
and the evaluator.

A :class:`WorkerGroup` starts one Ray actor per bundle of its role in the placement plan
(worker ``i`` gets bundle ``i``), pings them, gathers timed results, restarts a dead worker
when the group allows it, and kills them at shutdown. Subclasses add the typed methods the
driver calls (``PolicyGroup.save_checkpoint(path)``, ``RolloutGroup.generate(...)``, ...).

"Group" here always means a set of Ray actors; the ``n`` responses GRPO samples for one
prompt are a *response group* (see :mod:`rl.batch`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Sequence

from rl.placement import PlacementPlan

__all__ = ["WorkerGroup", "bundle_options", "kill_actors", "timed"]


def bundle_options(plan: PlacementPlan, role: str) -> list[dict[str, Any]]:
    """Ray actor options of every worker of ``role``: worker ``i`` in the role's bundle ``i``."""
    return [plan.actor_options(role, i) for i in range(plan.slots[role].num_workers)]


def kill_actors(actors: Iterable[Any]) -> None:
    """Kill Ray actors without restart; already-dead ones are ignored (best effort at shutdown)."""
    import ray

    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - the actor may already be gone
            pass


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds it took)``: what a worker returns for :meth:`WorkerGroup.gather`."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


class WorkerGroup:
    """``len(options)`` Ray actors running ``worker_cls``; worker ``i`` is started with
    ``options[i]`` (its placement bundle) and the constructor arguments ``args(i)``.

    Every worker class has a ``ping()`` method returning True; the group waits for all of
    them before the constructor returns, so a worker that cannot start fails here.

    Attributes:
        name: the role, used in messages.
        workers: the Ray actor handles, in rank order.
        generations: restart count per worker (a result of generation ``g`` from a worker
            now at a later generation came from a process that is gone).
        restartable: whether :meth:`restart` may replace a single worker (independent workers
            such as reward scorers; not ranks of one torch process group).
    """

    restartable = False

    def __init__(self, name: str, worker_cls: type, options: Sequence[dict[str, Any]],
                 args: Callable[[int], tuple], wait: bool = True):
        """Spawn one worker per entry of ``options``; ``wait``: until each has started (else call
        :meth:`ready` later, so that several groups start at once)."""
        import ray

        self.name = name
        self._options = [dict(o) for o in options]
        self._args = args
        # No automatic restarts: a dead worker is the group's decision (see restart).
        self._remote_cls = ray.remote(max_restarts=0)(worker_cls)
        self.workers = [self._spawn(i) for i in range(len(self._options))]
        self.generations = [0] * len(self.workers)
        if wait:
            self.ping()

    def _spawn(self, index: int) -> Any:
        return self._remote_cls.options(**self._options[index]).remote(*self._args(index))

    def ping(self) -> None:
        """Wait until every worker answers (raises the Ray error of a worker that died)."""
        import ray

        ray.get([w.ping.remote() for w in self.workers])

    def ready(self) -> None:
        """Wait until every worker has started (:meth:`ping`)."""
        self.ping()

    def restart(self, index: int) -> None:
        """Kill worker ``index`` and start a fresh one in the same bundle (its generation + 1)."""
        if not self.restartable:
            raise RuntimeError(f"{self.name}: a single worker of this group cannot be restarted")
        self.generations[index] += 1
        kill_actors([self.workers[index]])
        self.workers[index] = self._spawn(index)

    @staticmethod
    def gather(futures: Sequence[Any]) -> tuple[list[Any], float]:
        """Results of :func:`timed` worker calls in the given order, and the slowest call's seconds."""
        import ray

        results = ray.get(list(futures))
        return [r for r, _ in results], max((t for _, t in results), default=0.0)

    def shutdown(self) -> None:
        kill_actors(self.workers)
        self.workers = []
