"""The Ray worker groups of a GRPO run and how they start.

:func:`build_groups` spawns every group (actor ranks, reference, rollout engines, reward
workers) before waiting for any, so the workers' start-up (process start, imports, model
loading) runs at once rather than group after group; :meth:`Groups.ready` waits for all of them.
When roles share devices (a pool with ``cluster.<role>.colocate_with`` members, e.g. vLLM on the
actor's GPUs) the groups start one after the other as before: an engine that sizes its memory
from what is free on the device (vLLM's ``gpu_memory_utilization``) must start after the
models already placed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from rl.config import Config
from rl.placement import PlacementPlan, roles_for

if TYPE_CHECKING:
    from rl.workers.policy_group import PolicyGroup
    from rl.workers.reward_pool import RewardPool
    from rl.workers.rollout_group import RolloutGroup

__all__ = ["Groups", "build_groups", "build_placement", "shares_devices"]


@dataclass
class Groups:
    """The Ray worker groups of a run (:class:`rl.workers.group.WorkerGroup` subclasses)."""

    actor: "PolicyGroup"
    rollout: "RolloutGroup"
    reward: "RewardPool"
    reference: Optional[Any] = None   # a PolicyGroup, or the actor's AdapterOffReference (LoRA)

    def policies(self) -> list["PolicyGroup"]:
        """The policy worker groups: the actor, and the reference when there is one."""
        return [g for g in (self.actor, self.reference) if g is not None]

    def ready(self) -> None:
        """Wait until every worker has started (raises the Ray error of one that failed)."""
        for g in (self.actor, self.reference, self.rollout, self.reward):
            if g is not None:
                g.ready()

    def shutdown(self) -> None:
        for g in (self.rollout, self.reward, self.reference, self.actor):
            if g is not None:
                g.shutdown()


def build_placement(cfg: Config) -> PlacementPlan:
    """The run's placement plan (roles from :func:`rl.placement.roles_for`: reference with a KL loss,
    evaluator when ``eval.freq > 0``)."""
    return PlacementPlan(cfg.cluster, roles_for(cfg))


def shares_devices(plan: PlacementPlan) -> bool:
    """Whether some pool holds several roles (``colocate_with``): then the groups start one by one."""
    return any(len(pool.members) > 1 for pool in plan.pools.values())


def build_groups(cfg: Config, plan: PlacementPlan, model_path: str, reference_path: str,
                 total_updates: int) -> Groups:
    """Spawn the run's groups on a created ``plan``. Unless :func:`shares_devices`, the groups are
    still starting when this returns: call :meth:`Groups.ready` (after spawning anything else that
    should start alongside, e.g. the evaluator)."""
    from rl.workers.group import bundle_options
    from rl.workers.lora import lora_reference, serves_adapter
    from rl.workers.policy_group import AdapterOffReference, PolicyGroup
    from rl.workers.reward_pool import RewardPool
    from rl.workers.rollout_group import RolloutGroup

    wait = shares_devices(plan)
    common = dict(model_cfg=cfg.model, actor_cfg=cfg.actor, rollout_n=cfg.rollout.n,
                  temperature=cfg.rollout.temperature, seed=cfg.trainer.seed)
    actor = PolicyGroup("actor", plan, model_path=model_path, total_steps=total_updates, wait=wait, **common)
    reference = None
    if "reference" in plan.slots:
        reference = PolicyGroup("reference", plan, model_path=reference_path, wait=wait, **common)
    elif lora_reference(cfg):   # LoRA: the actor ranks with the adapters disabled, no second copy
        reference = AdapterOffReference(actor)
    rollout = RolloutGroup(cfg.rollout, model_path, plan, model_cfg=cfg.model, device=cfg.trainer.device,
                           seed=cfg.trainer.seed, lora=cfg.actor.lora if serves_adapter(cfg) else None, wait=wait)
    reward = RewardPool(cfg.reward, bundle_options(plan, "reward"), wait=wait)
    groups = Groups(actor=actor, rollout=rollout, reward=reward, reference=reference)
    for g in groups.policies():   # rank 0's address, then every rank's set-up, still without waiting
        g.start_setup()
    return groups
