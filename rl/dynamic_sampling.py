"""Dynamic sampling (DAPO's group filtering): train only on GRPO groups that carry a signal.

A GRPO advantage compares a response's reward with its group's: when the n rewards of a
group are all equal (every response solved the prompt, or none did) every advantage is 0
and the group only costs compute and dilutes the token-mean loss. With
``algorithm.filter_groups.enable`` the driver drops such groups, draws further prompt
batches and generates again until ``trainer.train_batch_size`` groups are kept::

    round 1   B prompts -> B groups -> filter -> k1 kept
    round 2   B prompts -> B groups -> filter -> k2 kept     (while k1 + k2 + ... < B
    ...                                                      and rounds < max_num_gen_batches)
    train on the first B kept groups (the surplus of the last round is cut)

A group is dropped when its ``metric`` values (the total ``score`` or one reward component)
are all equal (zero variance), or when their mean lies outside ``[low, high]`` (either bound
may be ``None``). Everything here is pure (no Ray): :func:`select_groups` decides per
round, :class:`GroupAccumulator` collects the kept groups of one step and reports counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from rl.batch import RolloutBatch, concat_batches
from rl.config import ConfigError, FilterGroupsConfig
from rl.diversity import zero_variance_groups

__all__ = ["GroupSelection", "select_groups", "metric_values", "group_multiple", "GroupAccumulator"]


@dataclass(frozen=True)
class GroupSelection:
    """The verdict on the groups of one generation round (group indices, ascending).

    Every group is in exactly one list; a group both constant and out of bounds counts as
    ``zero_variance``."""

    kept: list[int]
    zero_variance: list[int]
    out_of_bounds: list[int]

    @property
    def num_groups(self) -> int:
        return len(self.kept) + len(self.zero_variance) + len(self.out_of_bounds)


def select_groups(values: Sequence[float] | np.ndarray, n: int, low: Optional[float] = None,
                  high: Optional[float] = None) -> GroupSelection:
    """Split the groups of one round into kept and dropped ones.

    Args:
        values: (B*n,) metric value per sample, ordered group by group (sample ``i`` belongs
            to group ``i // n``, as in :class:`rl.batch.RolloutBatch`).
        n: responses per group.
        low, high: bounds on the group's mean value, inclusive (``None``: no bound).

    A group has zero variance when its values are all exactly equal
    (:func:`rl.diversity.zero_variance_groups`). A non-finite mean counts as out of bounds.
    """
    if n < 1:
        raise ValueError(f"select_groups: n must be >= 1, got {n}")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size % n:
        raise ValueError(f"select_groups: expected (B*n,) values with n={n}, got shape {array.shape}")
    is_constant = zero_variance_groups(array, np.arange(array.size) // n)
    kept, constant, outside = [], [], []
    for g, group in enumerate(array.reshape(-1, n)):
        mean = float(group.mean())
        if is_constant[g]:
            constant.append(g)
        elif not math.isfinite(mean) or (low is not None and mean < low) or (high is not None and mean > high):
            outside.append(g)
        else:
            kept.append(g)
    return GroupSelection(kept, constant, outside)


def metric_values(batch: RolloutBatch, metric: str) -> np.ndarray:
    """(N,) values of ``metric`` per sample: the total ``score`` or a reward component.

    A round whose groups all failed to score carries no components (only ``score = 0`` and
    ``reward_failed``): its values are 0, so its groups are dropped as constant. Otherwise a
    component the reward does not produce is a :class:`rl.config.ConfigError` naming the key.
    """
    if metric == "score":
        return np.asarray(batch.scores, dtype=np.float64)
    if metric in batch.components:
        return np.asarray(batch.components[metric], dtype=np.float64)
    if batch.reward_failures >= len(batch.records):
        return np.zeros(len(batch))
    known = ["score"] + sorted(k for k in batch.components if k != "reward_failed")
    raise ConfigError(f"config key 'algorithm.filter_groups.metric' = {metric!r}: the reward returned no such "
                      f"component; it returns {known}")


def group_multiple(n: int, world_sizes: Sequence[int]) -> int:
    """Smallest number of groups whose ``m * n`` sequences split evenly over every world size
    (the actor's and the reference's ranks each need equal shards)."""
    size = 1
    for w in world_sizes:
        size = size * w // math.gcd(size, w)
    return size // math.gcd(size, n)


@dataclass
class GroupAccumulator:
    """Kept groups of one step, collected over generation rounds.

    Call :meth:`add` with each round's scored batch while :meth:`wants_more`; then
    :meth:`kept_batch` is the training batch (the first ``target_groups`` kept groups, in
    round then group order) and :meth:`metrics` the ``batch/*`` counts.

    Attributes:
        target_groups: groups a full training batch has (``trainer.train_batch_size``).
        max_rounds: generation rounds allowed (0 = unlimited).
        metric, low, high: the filter (see :func:`select_groups`, :func:`metric_values`).
    """

    target_groups: int
    max_rounds: int = 0
    metric: str = "score"
    low: Optional[float] = None
    high: Optional[float] = None
    generated: list[RolloutBatch] = field(default_factory=list)
    selections: list[GroupSelection] = field(default_factory=list)

    @classmethod
    def from_config(cls, cfg: FilterGroupsConfig, target_groups: int) -> "GroupAccumulator":
        return cls(target_groups, cfg.max_num_gen_batches, cfg.metric, cfg.low, cfg.high)

    def add(self, batch: RolloutBatch) -> GroupSelection:
        """Filter one scored round and keep it."""
        selection = select_groups(metric_values(batch, self.metric), batch.n, self.low, self.high)
        self.generated.append(batch)
        self.selections.append(selection)
        return selection

    @property
    def rounds(self) -> int:
        return len(self.generated)

    @property
    def num_kept(self) -> int:
        return sum(len(s.kept) for s in self.selections)

    def wants_more(self) -> bool:
        """Another round is needed (not enough kept groups) and allowed (round limit)."""
        if self.num_kept >= self.target_groups:
            return False
        return self.max_rounds <= 0 or self.rounds < self.max_rounds

    def num_trained(self, multiple: int = 1) -> int:
        """Groups :meth:`kept_batch` holds: at most ``target_groups``, a multiple of ``multiple``."""
        take = min(self.num_kept, self.target_groups)
        return take - take % max(1, multiple)

    def kept_batch(self, multiple: int = 1) -> Optional[RolloutBatch]:
        """The training batch: the first :meth:`num_trained` kept groups as one batch (``None``
        when there are none). Its reward failure / restart counts cover every round."""
        remaining = self.num_trained(multiple)
        if remaining == 0:
            return None
        pieces = []
        for batch, selection in zip(self.generated, self.selections):
            take = selection.kept[:remaining]
            if take:
                pieces.append(batch.select_groups(take))
                remaining -= len(take)
        out = concat_batches(pieces)
        out.reward_failures = sum(b.reward_failures for b in self.generated)
        out.reward_restarts = sum(b.reward_restarts for b in self.generated)
        return out

    def all_generated(self) -> RolloutBatch:
        """Every round's groups, kept or not, as one batch."""
        return concat_batches(self.generated)

    def record_ids(self) -> list[str]:
        """Ids of every prompt generated for in this step, in round order."""
        return [str(r.get("id", "")) for b in self.generated for r in b.records]

    def metrics(self, multiple: int = 1) -> dict[str, float]:
        """verl-like counts of the step's sampling::

            batch/num_gen_batches         generation rounds used
            batch/generated_groups        groups generated over all rounds (= kept + dropped)
            batch/kept_groups             groups that passed the filter (before the cut to the batch size)
            batch/dropped_groups          groups dropped (= zero_variance + out_of_bounds)
            batch/dropped_zero_variance   ... because their metric values were all equal
            batch/dropped_out_of_bounds   ... because their mean metric was outside [low, high]
            batch/trained_groups          groups in the training batch
            batch/underfilled             1 when the training batch has fewer than target_groups
            critic/score_all/mean         mean total score over every generated sample
        """
        zero = sum(len(s.zero_variance) for s in self.selections)
        outside = sum(len(s.out_of_bounds) for s in self.selections)
        trained = self.num_trained(multiple)
        scores = [np.asarray(b.scores, dtype=np.float64) for b in self.generated]
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        out = {
            "batch/num_gen_batches": float(self.rounds),
            "batch/generated_groups": float(sum(s.num_groups for s in self.selections)),
            "batch/kept_groups": float(self.num_kept),
            "batch/dropped_groups": float(zero + outside),
            "batch/dropped_zero_variance": float(zero),
            "batch/dropped_out_of_bounds": float(outside),
            "batch/trained_groups": float(trained),
            "batch/underfilled": float(trained < self.target_groups),
        }
        if all_scores.size:
            out["critic/score_all/mean"] = float(all_scores.mean())
        return out
