"""The container that travels between the driver's phases: one GRPO batch.

``B`` prompts x ``n`` responses = ``N = B*n`` samples, ordered response group by
response group (the ``n`` responses of prompt ``g`` are samples ``g*n .. g*n+n-1``,
``group_index[i] = i // n``).

* :class:`RolloutBatch`: the training records (with their per-sample ground truth),
  the sampled responses, their rewards and reward components. Dynamic sampling
  selects and joins these (:meth:`RolloutBatch.select_groups`, :func:`concat_batches`).
* :class:`GRPOBatch`: everything one driver step builds, phase by phase (:class:`Phase`):
  the rollout, the reward futures, the model tensors, old / reference log-probs,
  advantages and the actor's metrics.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from rl.dynamic_sampling import GroupAccumulator
    from rl.models.encoded_batch import EncodedBatch
    from rl.rollout_corr import RolloutCorrection
    from rl.workers.reward_pool import PendingScores


@dataclass
class RolloutBatch:
    records: list[dict[str, Any]]            # B training records
    n: int                                   # responses per prompt
    group_index: list[int]                   # N: prompt index of each sample
    response_ids: list[list[int]]            # N token id lists (stop token included when sampled)
    response_texts: list[str]                # N decoded responses
    rollout_log_probs: list[list[float]]     # N sampled-token log-probs from the rollout engine
    finish_reasons: list[str]                # N: "stop" | "length"
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))     # N total rewards
    components: dict[str, np.ndarray] = field(default_factory=dict)     # component -> N values
    reward_failures: int = 0
    reward_restarts: int = 0

    def __len__(self) -> int:
        return len(self.response_ids)

    def reward_groups(self) -> list[tuple[list[str], dict[str, Any], list[int]]]:
        """One (responses, training record, response token counts) task per prompt (the reward reads the
        record's ``ground_truth``; its ``id`` names the sample in errors; user rewards see all of it)."""
        groups = []
        for g, record in enumerate(self.records):
            idx = [i for i, gi in enumerate(self.group_index) if gi == g]
            groups.append(([self.response_texts[i] for i in idx], record,
                           [len(self.response_ids[i]) for i in idx]))
        return groups

    def set_rewards(self, scored: Sequence[Sequence[dict[str, float]]], failed: int = 0, restarts: int = 0) -> None:
        """Store per-group reward dicts (each with "score" + components) in sample order."""
        flat = [row for group in scored for row in group]
        if len(flat) != len(self):
            raise ValueError(f"reward pool returned {len(flat)} scores for {len(self)} samples")
        self.scores = np.array([float(r.get("score", 0.0)) for r in flat], dtype=np.float64)
        keys = sorted({k for r in flat for k in r if k != "score"})
        self.components = {k: np.array([float(r.get(k, 0.0)) for r in flat]) for k in keys}
        self.reward_failures = failed
        self.reward_restarts = restarts

    def encode(self, processor: Any):
        from rl.models.inputs import encode_for_training

        samples = [self.records[g] for g in self.group_index]
        return encode_for_training(processor, samples, self.response_ids)

    def sample_rows(self, k: int) -> list[dict[str, Any]]:
        """The first ``k`` samples as table rows (query, response, rewards)."""
        rows = []
        for i in range(min(k, len(self))):
            rec = self.records[self.group_index[i]]
            row = {"id": rec.get("id", ""), "query": rec.get("query", ""), "response": self.response_texts[i],
                   "score": float(self.scores[i]) if len(self.scores) else float("nan")}
            row.update({c: float(v[i]) for c, v in self.components.items()})
            rows.append(row)
        return rows

    def sample_views(self, k: int) -> list[Any]:
        """The image column of :meth:`sample_rows` (same ``k`` samples): each row's keyframe with the
        response's boxes / points and the GT boxes (:class:`rl.sample_views.SampleView`, or None)."""
        from rl.sample_views import sample_view

        return [sample_view(self.records[self.group_index[i]], self.response_texts[i]) for i in range(min(k, len(self)))]

    def group_rows(self, group: int) -> list[int]:
        """Sample indices of prompt ``group`` (its n responses), in sample order."""
        return [i for i, g in enumerate(self.group_index) if g == group]

    def select_groups(self, groups: Sequence[int]) -> "RolloutBatch":
        """A batch of the given prompt groups, in the given order (group ``groups[k]`` becomes
        group ``k``), with their responses, scores and components. The reward failure / restart
        counts are those of the whole generation and are carried over unchanged."""
        rows: list[int] = []
        group_index: list[int] = []
        for k, g in enumerate(groups):
            if not 0 <= g < len(self.records):
                raise IndexError(f"select_groups: group {g} out of range for a batch of {len(self.records)} prompts")
            members = self.group_rows(g)
            rows += members
            group_index += [k] * len(members)
        return RolloutBatch(
            [self.records[g] for g in groups], self.n, group_index,
            [self.response_ids[i] for i in rows], [self.response_texts[i] for i in rows],
            [self.rollout_log_probs[i] for i in rows], [self.finish_reasons[i] for i in rows],
            scores=self.scores[rows] if len(self.scores) else np.zeros(0),
            components={k: v[rows] for k, v in self.components.items()},
            reward_failures=self.reward_failures, reward_restarts=self.reward_restarts,
        )


def flatten_rollout(records: list[dict[str, Any]], outputs: Sequence[Any], n: int) -> RolloutBatch:
    """Join the rollout workers' :class:`rl.rollout.base.RolloutOutput` (each covering a
    contiguous block of prompts, prompt-major) into one batch."""
    from rl.rollout.base import RolloutOutput

    out = RolloutOutput.concat(list(outputs))
    if out.n != n:
        raise ValueError(f"rollout returned n={out.n} responses per prompt, expected n={n}")
    if out.num_prompts != len(records):
        raise ValueError(f"rollout covered {out.num_prompts} prompts, expected {len(records)}")
    logps = out.logprobs or [[] for _ in out.responses]
    return RolloutBatch(records, n, list(out.group_ids), [list(t) for t in out.token_ids], list(out.texts),
                        [list(x) for x in logps], list(out.finish_reasons))


def concat_batches(batches: Sequence[RolloutBatch]) -> RolloutBatch:
    """The batches one after the other (group indices shifted, same ``n``). Scores are joined
    when every batch is scored; a component missing from some batches is 0 there (as in
    :meth:`RolloutBatch.set_rewards`); reward failure / restart counts are summed."""
    if not batches:
        raise ValueError("concat_batches: no batches")
    n = batches[0].n
    if any(b.n != n for b in batches):
        raise ValueError(f"concat_batches: batches with different n {[b.n for b in batches]}")
    scored = [len(b.scores) == len(b) for b in batches]
    if any(scored) and not all(scored):
        raise ValueError("concat_batches: some batches are scored and others are not")
    group_index: list[int] = []
    offset = 0
    for b in batches:
        group_index += [offset + g for g in b.group_index]
        offset += len(b.records)
    keys = sorted({k for b in batches for k in b.components})
    return RolloutBatch(
        [r for b in batches for r in b.records], n, group_index,
        [x for b in batches for x in b.response_ids], [x for b in batches for x in b.response_texts],
        [x for b in batches for x in b.rollout_log_probs], [x for b in batches for x in b.finish_reasons],
        scores=np.concatenate([np.asarray(b.scores, dtype=np.float64) for b in batches]) if scored[0] else np.zeros(0),
        components={k: np.concatenate([b.components.get(k, np.zeros(len(b))) for b in batches]) for k in keys},
        reward_failures=sum(b.reward_failures for b in batches),
        reward_restarts=sum(b.reward_restarts for b in batches),
    )


class Phase(enum.IntEnum):
    """How far a :class:`GRPOBatch` has come through a step, in the driver's order.

    A phase is reached when its work is done, except ``UPDATING``, reached when the actor
    update starts: from there on a failure may leave the actor between two steps, so the
    driver cannot rewind to the start of the step. Scoring overlaps encoding, which is why
    ``SCORED`` comes after ``ENCODED``; with dynamic sampling the rewards are already in
    when the batch is ``GENERATED`` (``SCORED`` is then reached without waiting).
    """

    DRAWN = 0        # created, nothing generated yet
    GENERATED = 1    # responses sampled; their scoring may still be running
    ENCODED = 2      # model tensors built
    SCORED = 3       # every response has its reward
    LOG_PROBS = 4    # old (and reference) log-probs in
    ADVANTAGES = 5   # advantages computed
    UPDATING = 6     # the actor update has started
    UPDATED = 7      # the actor's optimizer steps are done
    SYNCED = 8       # the new weights are in the rollout engines


@dataclass
class GRPOBatch:
    """One step's batch. Shapes: ``N`` responses, ``R`` response tokens (padded).

    Attributes:
        step: the global step it belongs to.
        phase: the last :class:`Phase` reached (advance with :meth:`advance`).
        rollout: the N responses (and, once scored, their rewards); None until generated, and
            None after dynamic sampling that kept no response group.
        pending_rewards: the reward pool's futures while scoring runs (None once collected).
        sampling: dynamic sampling's rounds (None without dynamic sampling).
        encoded: the model's tensors (``response_mask`` (N, R), ...).
        log_prob_futures: the log-prob passes per role (``"actor"``, ``"reference"``;
            :class:`rl.workers.policy_group.PendingLogProbs`) while they run.
        old_log_probs: (N, R) log-probs of the responses under the actor before the update.
        ref_log_probs: (N, R) under the reference policy (None without a KL loss).
        advantages: (N, R) float32, zero on padding.
        rollout_correction: IS weights / rejection mask / mismatch metrics from the rollout's and the
            old log-probs (:mod:`rl.rollout_corr`; None when ``algorithm.rollout_correction`` is off).
        actor_metrics: ``actor/*`` of the update.
        weight_sync_bytes: bytes sent to the rollout engines after the update (one-step off-policy:
            the last push completed before this step's generation ahead started).
        staleness: actor updates between the weights that generated the rollout and the actor this
            step updates (None: synchronous generation, always 0; :mod:`rl.off_policy`).
        busy: seconds the workers of a phase computed (``timing_busy_s/<phase>``).
        started_at: ``time.perf_counter()`` when the step started.
    """

    step: int
    phase: Phase = Phase.DRAWN
    rollout: Optional[RolloutBatch] = None
    pending_rewards: Optional["PendingScores"] = None
    sampling: Optional["GroupAccumulator"] = None
    encoded: Optional["EncodedBatch"] = None
    log_prob_futures: dict[str, Any] = field(default_factory=dict)
    old_log_probs: Optional[torch.Tensor] = None
    ref_log_probs: Optional[torch.Tensor] = None
    advantages: Optional[torch.Tensor] = None
    rollout_correction: Optional["RolloutCorrection"] = None
    actor_metrics: dict[str, float] = field(default_factory=dict)
    weight_sync_bytes: int = 0
    staleness: Optional[int] = None
    busy: dict[str, float] = field(default_factory=dict)
    started_at: float = field(default_factory=time.perf_counter)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The B prompt records the batch trains on ([] before generation)."""
        return self.rollout.records if self.rollout is not None else []

    def add_busy(self, phase: str, seconds: float) -> None:
        self.busy[phase] = self.busy.get(phase, 0.0) + seconds

    def advance(self, phase: Phase) -> "GRPOBatch":
        """Mark ``phase`` reached; phases only move forward (a ValueError otherwise)."""
        if phase <= self.phase:
            raise ValueError(f"step {self.step}: batch cannot go from phase {self.phase.name} to {phase.name}")
        self.phase = phase
        return self
