"""Map roles (actor, rollout, reference, reward, evaluator) to Ray placement groups.

A resource config (``configs/cluster/*.yaml`` -> :class:`ClusterConfig`) gives
each role a pool. Roles whose ``colocate_with`` names another role share that
role's placement group: worker ``i`` of every colocated role sits in bundle
``i`` and asks for a ``1/k`` share of it (k = number of roles in the pool),
the way verl colocates actor, reference and rollout on the same GPUs. The same
code runs with CPU bundles on a laptop and GPU bundles on a cluster.

Multi-node: each pool is one placement group with the pool's Ray strategy
(``PACK``, ``SPREAD``, ``STRICT_PACK``, ``STRICT_SPREAD``); ``node_resource``
makes every bundle of a pool require a custom resource that only some nodes
carry (``ray start --resources='{"node_gen": 1}'``), which pins the pool to
those nodes. :mod:`rl.placement_sim` predicts the node of every bundle from the
cluster config alone (``launch.train --dry-run``); :meth:`PlacementPlan.bundle_nodes`
reads the real one after :meth:`PlacementPlan.create`.

Inside a Ray Tune trial the trial's own placement group already holds every
bundle of the run (see :func:`trial_bundles`); :func:`reserved_bundles` makes
:meth:`PlacementPlan.create` use those bundles instead of creating new groups.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Literal, Optional

from rl.schema import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from rl.config import Config

ROLES = ("actor", "rollout", "reference", "reward", "evaluator")
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
#: ``cluster.<role>.colocate_with`` values ("" = own pool).
COLOCATE_CHOICES = ("",) + ROLES
# Amount of a pool's ``node_resource`` each bundle asks for (a node carries 1 unit).
NODE_RESOURCE_SHARE = 0.001


# ------------------------------------------------------------------ config


@dataclass
class PoolConfig:
    """One role's placement: how many workers, what each bundle holds, on which nodes."""

    # Workers (Ray actors) of this role.
    num_workers: Annotated[int, ">= 0"] = 1
    # CPUs of each worker's bundle.
    cpus_per_worker: Annotated[float, ">= 0"] = 1.0
    # GPUs of each worker's bundle.
    gpus_per_worker: Annotated[float, ">= 0"] = 0.0
    # Name of a resource pool shared by colocated roles ("" = own pool).
    colocate_with: Literal[COLOCATE_CHOICES] = ""
    # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD
    strategy: Literal[STRATEGIES] = "PACK"
    # Custom Ray node resource the bundles require (e.g. "node:worker1"), "" = any node.
    node_resource: str = ""


@dataclass
class ClusterConfig:
    """Resource layout: one placement pool per role (configs/cluster/*.yaml)."""

    # Name of the resource layout (configs/cluster/<name>.yaml).
    name: str = "local_cpu"
    # Ray address; "" starts a local Ray instance.
    address: str = ""
    # Nodes of the cluster.
    nodes: Annotated[int, ">= 1"] = 1
    # GPUs per node (0 = CPU only).
    devices_per_node: Annotated[int, ">= 0"] = 0
    # Reserve the whole job's bundles for Ray (CPU counts are soft on a laptop).
    num_cpus: Optional[Annotated[int, ">= 1"]] = None
    # Logical CPUs per node for the dry run's simulated nodes and feasibility check
    # (null: num_cpus on a one-node cluster, otherwise CPUs are not checked).
    cpus_per_node: Optional[Annotated[int, ">= 1"]] = None
    # Custom Ray resource carried by each node, in node order ("" = none, "a+b" = two), e.g.
    # [node_train, node_gen]: pools' node_resource pins land there (dry run, `ray start --resources`
    # in launch/slurm); empty: the pools' node_resource names go to nodes 0, 1, ... in order of use.
    node_resources: list[str] = field(default_factory=list)
    actor: PoolConfig = field(default_factory=PoolConfig)
    rollout: PoolConfig = field(default_factory=PoolConfig)
    reference: PoolConfig = field(default_factory=PoolConfig)
    reward: PoolConfig = field(default_factory=PoolConfig)
    evaluator: PoolConfig = field(default_factory=PoolConfig)

    def validate(self) -> Iterator[tuple[str, str]]:
        if len(self.node_resources) > self.nodes:
            yield "node_resources", f"names {len(self.node_resources)} nodes but cluster.nodes = {self.nodes}"


def roles_for(cfg: "Config") -> dict[str, int]:
    """Workers per role of a GRPO run (0 = role not started).

    The reference runs only with a KL loss and full fine-tuning (with ``actor.lora.rank > 0`` the
    actor computes reference log-probs itself, adapters disabled); the evaluator only when the run
    evaluates during training (``eval.freq > 0``).
    """
    needs_ref = cfg.actor.use_kl_loss and cfg.actor.kl_loss_coef > 0 and cfg.actor.lora.rank == 0
    return {
        "actor": cfg.cluster.actor.num_workers,
        "rollout": cfg.cluster.rollout.num_workers,
        "reference": cfg.cluster.reference.num_workers if needs_ref else 0,
        "reward": cfg.cluster.reward.num_workers,
        "evaluator": cfg.cluster.evaluator.num_workers if cfg.eval.freq > 0 else 0,
    }


def role_notes(cfg: "Config") -> list[str]:
    """Lines for ``launch.train --dry-run`` under the plan: what the evaluator will do (or why a role
    with configured workers is not placed), e.g.
    ``  evaluator: every 100 steps (eval.freq), at step 0 and at the last step; sampler hierarchical, ...``."""
    roles = roles_for(cfg)
    lines = []
    if cfg.cluster.reference.num_workers and not roles["reference"]:
        lines.append("  reference: not placed (LoRA: the actor ranks compute it with the adapters disabled)"
                     if cfg.actor.lora.rank > 0 and cfg.actor.use_kl_loss and cfg.actor.kl_loss_coef > 0 else
                     "  reference: not placed (no KL loss: actor.use_kl_loss = false or actor.kl_loss_coef = 0)")
    ev = cfg.eval
    if not roles["evaluator"]:
        lines.append("  evaluator: not placed (eval.freq = 0)")
        return lines
    fmt = ev.dataset_format or cfg.data.format
    split = ev.dataset_split or ("valid" if fmt == "synthetic" else "the reader's default")
    start = " at step 0," if cfg.trainer.val_before_train else ""
    policy = f"; sampler model {ev.sampler_model}" if ev.sampler_model else ""
    lines.append(f"  evaluator: every {ev.freq} steps (eval.freq),{start} and at the last step; sampler {ev.sampler}, "
                 f"segmenter {ev.segmenter.backend} on {ev.segmenter.device}, propagator {ev.propagator}{policy}")
    videos = "all videos" if ev.max_videos < 0 else f"at most {ev.max_videos} videos"
    lines.append(f"             data {ev.dataset_root or cfg.data.root} ({fmt}, split {split}), {videos}")
    return lines


@dataclass
class Pool:
    """One placement group: ``bundles[i]`` holds worker i of each member role."""

    name: str
    strategy: str
    bundles: list[dict[str, float]]
    members: list[str] = field(default_factory=list)
    node_resource: str = ""


@dataclass
class RoleSlot:
    """Where the workers of one role go and how much of a bundle each asks for."""

    role: str
    pool: str
    num_workers: int
    cpus: float
    gpus: float


@dataclass
class Reservation:
    """Bundles of an existing placement group set aside for the pools of one run.

    Attributes:
        pg: the placement group (a Tune trial's).
        offsets: pool name -> index of the pool's first bundle in ``pg``.
        bundles: pool name -> the bundles reserved for it (checked against the plan).
    """

    pg: Any
    offsets: dict[str, int]
    bundles: dict[str, list[dict[str, float]]]


_active_reservation: Optional[Reservation] = None


@contextlib.contextmanager
def reserved_bundles(reservation: Reservation) -> Iterator[Reservation]:
    """While active, :meth:`PlacementPlan.create` binds pools to ``reservation`` instead of creating groups."""
    global _active_reservation
    previous, _active_reservation = _active_reservation, reservation
    try:
        yield reservation
    finally:
        _active_reservation = previous


class PlacementPlan:
    """Resolved placement of the enabled roles; :meth:`create` makes the Ray placement groups."""

    def __init__(self, cluster: ClusterConfig, roles: dict[str, int]):
        """``roles``: role name -> number of workers actually needed (0 = role disabled)."""
        self.cluster = cluster
        self.pools: dict[str, Pool] = {}
        self.slots: dict[str, RoleSlot] = {}
        self._pgs: dict[str, Any] = {}
        self._offsets: dict[str, int] = {}
        self._borrowed = False
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
            if pc.strategy not in STRATEGIES:
                raise ConfigError(f"config key 'cluster.{role}.strategy' = {pc.strategy!r}; expected one of {list(STRATEGIES)}")
            if pc.cpus_per_worker < 0 or pc.gpus_per_worker < 0 or pc.cpus_per_worker + pc.gpus_per_worker <= 0:
                raise ConfigError(
                    f"cluster.{role}: a bundle needs CPUs or GPUs (cpus_per_worker={pc.cpus_per_worker}, "
                    f"gpus_per_worker={pc.gpus_per_worker})"
                )
            bundle = {"CPU": float(pc.cpus_per_worker)}
            if pc.gpus_per_worker:
                bundle["GPU"] = float(pc.gpus_per_worker)
            if pc.node_resource:
                bundle[pc.node_resource] = NODE_RESOURCE_SHARE
            self.pools[role] = Pool(role, pc.strategy, [dict(bundle) for _ in range(n)], [role], pc.node_resource)
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
        """Create (and wait for) one Ray placement group per pool.

        Under :func:`reserved_bundles` (a Tune trial) the pools are bound to the
        reserved bundles of the trial's placement group instead.
        """
        if _active_reservation is not None:
            self._bind(_active_reservation)
            return
        import ray
        from ray.util.placement_group import placement_group

        for name, pool in self.pools.items():
            pg = placement_group(pool.bundles, strategy=pool.strategy, name=f"vrs-{name}")
            ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
            if not ready:
                raise RuntimeError(
                    f"placement group for pool {name!r} ({len(pool.bundles)} x {pool.bundles[0]}, {pool.strategy}) "
                    f"not ready after {timeout_s}s: the cluster lacks these resources "
                    f"(available: {ray.available_resources()})"
                )
            self._pgs[name] = pg
            self._offsets[name] = 0

    def _bind(self, reservation: Reservation) -> None:
        for name, pool in self.pools.items():
            if name not in reservation.offsets:
                raise ConfigError(
                    f"pool {name!r} has no reserved bundles in this trial's placement group "
                    f"(reserved pools: {sorted(reservation.offsets)})"
                )
            reserved = reservation.bundles[name]
            if len(pool.bundles) > len(reserved) or any(b != reserved[0] for b in pool.bundles):
                raise ConfigError(
                    f"pool {name!r} needs {len(pool.bundles)} x {pool.bundles[0]} but the trial reserved "
                    f"{len(reserved)} x {reserved[0] if reserved else {}}"
                )
            self._pgs[name] = reservation.pg
            self._offsets[name] = reservation.offsets[name]
        self._borrowed = True

    def actor_options(self, role: str, index: int) -> dict[str, Any]:
        """``ray.remote(...).options(**this)`` for worker ``index`` of ``role``."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        slot = self.slots[role]
        opts: dict[str, Any] = {"num_cpus": slot.cpus, "num_gpus": slot.gpus}
        if slot.pool in self._pgs:
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self._pgs[slot.pool],
                placement_group_bundle_index=self._offsets.get(slot.pool, 0) + index,
            )
        return opts

    def remove(self) -> None:
        """Remove the placement groups this plan created (reserved bundles are left to their owner)."""
        from ray.util.placement_group import remove_placement_group

        if not self._borrowed:
            for pg in self._pgs.values():
                try:
                    remove_placement_group(pg)
                except Exception:  # noqa: BLE001 - best effort at shutdown
                    pass
        self._pgs.clear()
        self._offsets.clear()
        self._borrowed = False

    def bundle_nodes(self) -> dict[str, list[str]]:
        """Pool name -> node id of each bundle (after :meth:`create`)."""
        from ray.util.placement_group import placement_group_table

        out = {}
        for name, pg in self._pgs.items():
            table = placement_group_table(pg)
            first = self._offsets.get(name, 0)
            out[name] = [table["bundles_to_node_id"][first + i] for i in range(len(self.pools[name].bundles))]
        return out

    # --------------------------------------------------------------- figures
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
            pin = f", node_resource={pool.node_resource}" if pool.node_resource else ""
            lines.append(f"  pool {name!r} ({pool.strategy}{pin}): {len(pool.bundles)} x {pool.bundles[0]}  roles={pool.members}")
            for role in pool.members:
                s = self.slots[role]
                lines.append(f"    {role:<10} workers={s.num_workers} per-worker CPU={s.cpus:g} GPU={s.gpus:g}")
        lines.append(f"  total: {self.total_resources()}")
        return "\n".join(lines)


# ------------------------------------------------------------------ trials


def trial_bundles(plan: PlacementPlan, driver: dict[str, float]) -> tuple[list[dict[str, float]], Reservation]:
    """Bundles of one placement group holding a whole run: ``[driver, *pool bundles]``.

    Returns the bundle list (for a Tune ``PlacementGroupFactory``; bundle 0 hosts the
    trial's driver) and a :class:`Reservation` without its placement group, to be
    completed inside the trial with ``dataclasses.replace(reservation, pg=...)``.
    """
    bundles = [dict(driver)]
    offsets: dict[str, int] = {}
    reserved: dict[str, list[dict[str, float]]] = {}
    for name, pool in plan.pools.items():
        offsets[name] = len(bundles)
        reserved[name] = [dict(b) for b in pool.bundles]
        bundles.extend(dict(b) for b in pool.bundles)
    return bundles, Reservation(pg=None, offsets=offsets, bundles=reserved)


def trial_strategy(plan: PlacementPlan) -> str:
    """One Ray strategy for a trial's single placement group.

    All pools STRICT_PACK -> STRICT_PACK; otherwise PACK (bundles that carry a
    ``node_resource`` still land only on the nodes that have it).
    """
    strategies = {pool.strategy for pool in plan.pools.values()}
    return "STRICT_PACK" if strategies == {"STRICT_PACK"} else "PACK"
