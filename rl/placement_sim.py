"""Predict where a :class:`~rl.placement.PlacementPlan` lands on a cluster described by its config.

``launch.train --dry-run`` has no Ray cluster to ask: it builds simulated nodes
from ``cluster.nodes`` x (``devices_per_node`` GPUs, ``cpus_per_node`` CPUs,
``node_resources``) and assigns every pool's bundles the way Ray's strategies
would, pools in creation order:

- ``STRICT_PACK``: all bundles on one node, else infeasible;
- ``PACK``: all on one node when one fits them, else fill nodes in order;
- ``STRICT_SPREAD``: every bundle on a different node, else infeasible;
- ``SPREAD``: different nodes while there are some left, then reuse nodes.

Among equal candidates the lowest node index wins (Ray's own choice may differ
in which node, never in feasibility for these homogeneous pools). A pool that
cannot be placed raises :class:`PlacementError` naming the pool and what is missing.

At launch, :func:`check_fits_cluster` runs the same placement on the nodes of the
connected Ray cluster (``ray.nodes()``), right after ``ray.init`` and before any actor
starts, so that a run asking for more than the cluster has fails at once naming the
resource and the config keys instead of waiting for a placement group that never comes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from rl.placement import ClusterConfig, PlacementPlan, Pool
from rl.schema import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from rl.config import Config

_EPS = 1e-9


class PlacementError(ConfigError):
    """A pool of the plan does not fit the cluster described by the config."""


@dataclass
class SimNode:
    """One simulated node: total and still-free resources."""

    index: int
    total: dict[str, float]
    used: dict[str, float] = field(default_factory=dict)

    def free(self, key: str) -> float:
        return self.total.get(key, 0.0) - self.used.get(key, 0.0)

    def fits(self, demand: dict[str, float]) -> bool:
        return all(self.free(k) + _EPS >= v for k, v in demand.items() if v > 0)

    def take(self, demand: dict[str, float]) -> None:
        for k, v in demand.items():
            self.used[k] = self.used.get(k, 0.0) + v

    def label(self) -> str:
        custom = sorted(k for k in self.total if k not in ("CPU", "GPU"))
        return f"node {self.index}" + (f" [{', '.join(custom)}]" if custom else "")


@dataclass
class SimulatedPlacement:
    """Node index of every bundle of every pool, plus the nodes after placement."""

    plan: PlacementPlan
    nodes: list[SimNode]
    bundle_nodes: dict[str, list[int]]
    cpus_checked: bool

    def role_nodes(self, role: str) -> list[int]:
        """Node index of each worker of ``role`` (worker i sits in bundle i of its pool)."""
        slot = self.plan.slots[role]
        return self.bundle_nodes[slot.pool][: slot.num_workers]

    def format(self) -> str:
        """Human-readable table: pools, bundles per node, roles' workers per node, node usage."""
        c = self.plan.cluster
        cpu_text = (f"{_num(self.nodes[0].total['CPU'])} CPU" if self.cpus_checked
                    else "CPUs not checked (set cluster.cpus_per_node)")
        lines = [
            f"simulated placement (computed from the cluster config, no Ray cluster was contacted): "
            f"{c.nodes} node(s) x {c.devices_per_node} GPU, {cpu_text}",
        ]
        for node in self.nodes:
            lines.append(f"  {node.label()}")
        for name, pool in self.plan.pools.items():
            nodes = self.bundle_nodes[name]
            lines.append(f"  pool {name!r} {pool.strategy}: {len(pool.bundles)} bundle(s) of {_fmt(pool.bundles[0])}")
            lines.append(f"    {_ranges(nodes, 'bundle')}")
            for role in pool.members:
                slot = self.plan.slots[role]
                lines.append(
                    f"    {role:<10} {slot.num_workers} worker(s), each CPU {_num(slot.cpus)} GPU {_num(slot.gpus)}: "
                    f"{_ranges(self.role_nodes(role), 'worker')}"
                )
        lines.append("  usage after placement:")
        for node in self.nodes:
            used = [f"{key} {_num(node.used.get(key, 0.0))}/{_num(node.total[key])}" for key in ("GPU", "CPU")
                    if math.isfinite(node.total[key]) and node.total[key] > 0]
            if not self.cpus_checked:
                used.append(f"CPU {_num(node.used.get('CPU', 0.0))} (no limit known)")
            lines.append(f"    {node.label()}: {', '.join(used)}")
        return "\n".join(lines)


def _num(value: float) -> str:
    return f"{value:g}"


def _fmt(bundle: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {_num(v)}" for k, v in bundle.items()) + "}"


def _ranges(node_of: list[int], what: str) -> str:
    """``[0, 0, 1]`` -> ``"bundle 0-1 -> node 0; bundle 2 -> node 1"``."""
    parts, start = [], 0
    for i in range(1, len(node_of) + 1):
        if i == len(node_of) or node_of[i] != node_of[start]:
            span = f"{start}" if i - 1 == start else f"{start}-{i - 1}"
            parts.append(f"{what} {span} -> node {node_of[start]}")
            start = i
    return "; ".join(parts)


# --------------------------------------------------------------------- nodes


def node_resource_names(cluster: ClusterConfig, plan: Optional[PlacementPlan] = None) -> list[str]:
    """Custom resource of each node (``""`` = none).

    ``cluster.node_resources`` when given; otherwise the pools' ``node_resource``
    names (in the order the pools are created) go to nodes 0, 1, ...
    """
    if cluster.node_resources:
        if len(cluster.node_resources) > cluster.nodes:
            raise PlacementError(
                f"config key 'cluster.node_resources' names {len(cluster.node_resources)} nodes but "
                f"cluster.nodes = {cluster.nodes}"
            )
        return list(cluster.node_resources) + [""] * (cluster.nodes - len(cluster.node_resources))
    names: list[str] = []
    pools = plan.pools.values() if plan is not None else []
    for pool in pools:
        if pool.node_resource and pool.node_resource not in names:
            names.append(pool.node_resource)
    if len(names) > cluster.nodes:
        raise PlacementError(
            f"the pools pin {len(names)} node resources {names} but cluster.nodes = {cluster.nodes}; "
            "give each node its resource with cluster.node_resources"
        )
    return names + [""] * (cluster.nodes - len(names))


def simulated_nodes(cluster: ClusterConfig, plan: Optional[PlacementPlan] = None) -> tuple[list[SimNode], bool]:
    """Nodes described by the cluster config, and whether their CPU count is known."""
    if cluster.nodes <= 0:
        raise PlacementError(f"config key 'cluster.nodes' must be > 0, got {cluster.nodes}")
    if cluster.devices_per_node < 0:
        raise PlacementError(f"config key 'cluster.devices_per_node' must be >= 0, got {cluster.devices_per_node}")
    cpus: Optional[float] = cluster.cpus_per_node
    if cpus is None and cluster.nodes == 1 and cluster.num_cpus:
        cpus = cluster.num_cpus
    checked = cpus is not None
    nodes = []
    for index, name in enumerate(node_resource_names(cluster, plan)):
        total = {"CPU": float(cpus) if checked else math.inf, "GPU": float(cluster.devices_per_node)}
        for resource in filter(None, name.split("+")):
            total[resource] = 1.0
        nodes.append(SimNode(index, total))
    return nodes, checked


# ---------------------------------------------------------------- strategies


def _sum(bundles: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _place_pool(pool: Pool, nodes: list[SimNode]) -> list[int]:
    bundles = pool.bundles
    if pool.strategy in ("STRICT_PACK", "PACK"):
        whole = _sum(bundles)
        for node in nodes:
            if node.fits(whole):
                node.take(whole)
                return [node.index] * len(bundles)
        if pool.strategy == "STRICT_PACK":
            raise _error(pool, nodes, f"STRICT_PACK needs {_fmt(whole)} on one node")
        placed = []
        for i, bundle in enumerate(bundles):
            node = next((n for n in nodes if n.fits(bundle)), None)
            if node is None:
                raise _error(pool, nodes, f"bundle {i} of {len(bundles)} ({_fmt(bundle)}) fits on no node")
            node.take(bundle)
            placed.append(node.index)
        return placed
    # SPREAD / STRICT_SPREAD
    placed = []
    used: dict[int, int] = {}
    for i, bundle in enumerate(bundles):
        fresh = [n for n in nodes if n.index not in used and n.fits(bundle)]
        if fresh:
            node = fresh[0]
        elif pool.strategy == "STRICT_SPREAD":
            raise _error(pool, nodes, f"STRICT_SPREAD needs {len(bundles)} different nodes that each fit {_fmt(bundle)}")
        else:
            reuse = sorted((n for n in nodes if n.fits(bundle)), key=lambda n: (used.get(n.index, 0), n.index))
            if not reuse:
                raise _error(pool, nodes, f"bundle {i} of {len(bundles)} ({_fmt(bundle)}) fits on no node")
            node = reuse[0]
        node.take(bundle)
        used[node.index] = used.get(node.index, 0) + 1
        placed.append(node.index)
    return placed


def _error(pool: Pool, nodes: list[SimNode], why: str) -> PlacementError:
    need = _sum(pool.bundles)
    short = []
    for key, amount in need.items():
        total = sum(n.total.get(key, 0.0) for n in nodes)
        free = sum(max(0.0, n.free(key)) for n in nodes)
        if key not in ("CPU", "GPU") and total == 0:
            short.append(f"no node carries the custom resource {key!r} (set cluster.node_resources)")
        elif free + _EPS < amount:
            short.append(f"needs {_num(amount)} {key} in total but only {_num(free)} of {_num(total)} are left")
    free_text = "; ".join(f"{n.label()}: " + ", ".join(f"{k} {_num(n.free(k))}" for k in n.total) for n in nodes)
    detail = ("; ".join(short) + "; ") if short else ""
    return PlacementError(
        f"pool {pool.name!r} (roles {pool.members}) does not fit the cluster: {why}; {detail}free per node: {free_text}"
    )


def simulate(plan: PlacementPlan, cluster: Optional[ClusterConfig] = None) -> SimulatedPlacement:
    """Assign every bundle of ``plan`` to a simulated node of ``cluster`` (default: the plan's)."""
    cluster = cluster or plan.cluster
    nodes, checked = simulated_nodes(cluster, plan)
    placed = {name: _place_pool(pool, nodes) for name, pool in plan.pools.items()}
    return SimulatedPlacement(plan, nodes, placed, checked)


# ------------------------------------------------------------- live cluster


def live_nodes(plan: PlacementPlan, ray_nodes: Optional[Sequence[dict[str, Any]]] = None) -> list[SimNode]:
    """The alive nodes of the connected Ray cluster (``ray.nodes()`` unless given) as :class:`SimNode`:
    their total CPUs and GPUs and the custom resources the plan's pools pin to."""
    if ray_nodes is None:
        import ray

        ray_nodes = ray.nodes()
    pinned = {pool.node_resource for pool in plan.pools.values() if pool.node_resource}
    nodes = []
    for node in ray_nodes:
        if not node.get("Alive", True):
            continue
        resources = node.get("Resources", {})
        total = {"CPU": float(resources.get("CPU", 0.0)), "GPU": float(resources.get("GPU", 0.0))}
        total.update({key: float(value) for key, value in resources.items() if key in pinned})
        nodes.append(SimNode(len(nodes), total))
    return nodes


def _config_keys(cfg: "Config", pool: Pool) -> str:
    """The config keys that size ``pool`` and describe the cluster, with their values."""
    c = cfg.cluster
    owner = getattr(c, pool.name)
    sized = [f"cluster.{role}.num_workers = {getattr(c, role).num_workers}" for role in pool.members]
    sized += [f"cluster.{pool.name}.cpus_per_worker = {owner.cpus_per_worker:g}",
              f"cluster.{pool.name}.gpus_per_worker = {owner.gpus_per_worker:g}"]
    if pool.node_resource:
        sized.append(f"cluster.{pool.name}.node_resource = {pool.node_resource!r}")
    described = (f"cluster.nodes = {c.nodes}, cluster.devices_per_node = {c.devices_per_node}, "
                 f"cluster.num_cpus = {c.num_cpus}, cluster.cpus_per_node = {c.cpus_per_node}")
    return (f"the pool is sized by {', '.join(sized)}; the config describes the cluster as {described} "
            f"(cluster={c.name}): shrink the pool or run on a cluster that has these resources")


def check_fits_cluster(cfg: "Config", ray_nodes: Optional[Sequence[dict[str, Any]]] = None) -> SimulatedPlacement:
    """Place the run's plan (:func:`rl.placement.roles_for`) on the live Ray cluster's nodes.

    Call it after ``ray.init`` (``ray_nodes``: ``ray.nodes()``-style records instead of asking
    Ray). Raises :class:`PlacementError` naming the pool, the missing resource, the config keys
    that ask for it and the live nodes, when a pool can never be placed.
    """
    from rl.placement import roles_for

    plan = PlacementPlan(cfg.cluster, roles_for(cfg))
    nodes = live_nodes(plan, ray_nodes)
    if not nodes:
        raise PlacementError("the Ray cluster has no alive node")
    placed: dict[str, list[int]] = {}
    for name, pool in plan.pools.items():
        try:
            placed[name] = _place_pool(pool, nodes)
        except PlacementError as exc:
            raise PlacementError(f"the live Ray cluster ({len(nodes)} node(s)) is too small for this run: {exc}; "
                                 f"{_config_keys(cfg, pool)}") from None
    return SimulatedPlacement(plan, nodes, placed, cpus_checked=True)
