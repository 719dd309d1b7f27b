"""Small helpers shared by the Ray worker groups."""

from __future__ import annotations

from typing import Any, Iterable


def kill_actors(actors: Iterable[Any]) -> None:
    """Kill Ray actors without restart; already-dead ones are ignored (best effort at shutdown)."""
    import ray

    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - the actor may already be gone
            pass
