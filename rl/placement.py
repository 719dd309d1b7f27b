"""Map roles (actor, rollout, reference, reward, evaluator) to Ray placement groups.

A resource config (``configs/cluster/*.yaml`` -> :class:`ClusterConfig`) gives
each role a pool. Roles whose ``colocate_with`` names another role share that
role's placement group: worker ``i`` of every colocated role sits in bundle
``i`` and asks for a ``1/k`` share of it (k = number of roles in the pool),
the way verl colocates actor, reference and rollout on the same GPUs. The same
code runs with CPU bundles on a laptop and GPU bundles on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rl.config import ClusterConfig, ConfigError, PoolConfig

ROLES = ("actor", "rollout", "reference", "reward", "evaluator")


@dataclass
class Pool:
    """One placement group: ``bundles[i]`` holds worker i of each member role."""

    name: str
    strategy: str
    bundles: list[dict[str, float]]
    members: list[str] = field(default_factory=list)


@dataclass
class RoleSlot:
    """Where the workers of one role go and how much of a bundle each asks for."""

    role: str
    pool: str
    num_workers: int
    cpus: float
    gpus: float


class PlacementPlan:
    """Resolved placement of the enabled roles; :meth:`create` makes the Ray placement groups."""

    def __init__(self, cluster: ClusterConfig, roles: dict[str, int]):
        """``roles``: role name -> number of workers actually needed (0 = role disabled)."""
        self.cluster = cluster
        self.pools: dict[str, Pool] = {}
        self.slots: dict[str, RoleSlot] = {}
        self._pgs: dict[str, Any] = {}
        pool_cfgs: dict[str, PoolConfig] = {r: getattr(cluster, r) for r in ROLES}
        enabled = {r: n for r, n in roles.items() if n > 0}
        for role in enabled:
            if role not in ROLES:
                raise ConfigError(f"unknown role {role!r}; expected one of {ROLES}")
        # Pool owners first, then colocated members.
        for role, n in enabled.items():
            pc = pool_cfgs[role]
            if pc.colocate_with:
                continue
            bundle = {"CPU": float(pc.cpus_per_worker)}
            if pc.gpus_per_worker:
                bundle["GPU"] = float(pc.gpus_per_worker)
            if pc.node_resource:
                bundle[pc.node_resource] = 0.001
            self.pools[role] = Pool(role, pc.strategy, [dict(bundle) for _ in range(n)], [role])
        for role, n in enabled.items():
            owner = pool_cfgs[role].colocate_with
            if not owner:
                continue
            if owner not in self.pools:
                raise ConfigError(
                    f"cluster.{role}.colocate_with={owner!r}: that role has no pool of its own "
                    f"(enabled pools: {sorted(self.pools)})"
                )
            if n > len(self.pools[owner].bundles):
                raise ConfigError(
                    f"cluster.{role}: {n} workers cannot colocate with {owner!r}, which has "
                    f"{len(self.pools[owner].bundles)} bundles"
                )
            self.pools[owner].members.append(role)
        for pool in self.pools.values():
            share = 1.0 / len(pool.members)
            for role in pool.members:
                b = pool.bundles[0]
                self.slots[role] = RoleSlot(
                    role, pool.name, enabled[role], b.get("CPU", 0.0) * share, b.get("GPU", 0.0) * share
                )

    # ------------------------------------------------------------------ ray
    def create(self, timeout_s: float = 120.0) -> None:
        """Create (and wait for) one Ray placement group per pool."""
        import ray
        from ray.util.placement_group import placement_group

        for name, pool in self.pools.items():
            pg = placement_group(pool.bundles, strategy=pool.strategy, name=f"vrs-{name}")
            ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
            if not ready:
                raise RuntimeError(
                    f"placement group for pool {name!r} ({pool.bundles}) not ready after {timeout_s}s: "
                    f"the cluster lacks these resources ({ray.available_resources()})"
                )
            self._pgs[name] = pg

    def actor_options(self, role: str, index: int) -> dict[str, Any]:
        """``ray.remote(...).options(**this)`` for worker ``index`` of ``role``."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        slot = self.slots[role]
        opts: dict[str, Any] = {"num_cpus": slot.cpus, "num_gpus": slot.gpus}
        if slot.pool in self._pgs:
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self._pgs[slot.pool], placement_group_bundle_index=index
            )
        return opts

    def remove(self) -> None:
        from ray.util.placement_group import remove_placement_group

        for pg in self._pgs.values():
            try:
                remove_placement_group(pg)
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        self._pgs.clear()

    def bundle_nodes(self) -> dict[str, list[str]]:
        """Pool name -> node id of each bundle (after :meth:`create`)."""
        from ray.util.placement_group import placement_group_table

        out = {}
        for name, pg in self._pgs.items():
            table = placement_group_table(pg)
            out[name] = [table["bundles_to_node_id"][i] for i in range(len(self.pools[name].bundles))]
        return out

    def total_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for pool in self.pools.values():
            for b in pool.bundles:
                for k, v in b.items():
                    total[k] = total.get(k, 0.0) + v
        return total

    def describe(self) -> str:
        lines = [f"cluster {self.cluster.name!r}: {self.cluster.nodes} node(s) x {self.cluster.devices_per_node} device(s)"]
        for name, pool in self.pools.items():
            lines.append(f"  pool {name!r} ({pool.strategy}): {len(pool.bundles)} x {pool.bundles[0]}  roles={pool.members}")
            for role in pool.members:
                s = self.slots[role]
                lines.append(f"    {role:<10} workers={s.num_workers} per-worker CPU={s.cpus:g} GPU={s.gpus:g}")
        lines.append(f"  total: {self.total_resources()}")
        return "\n".join(lines)
