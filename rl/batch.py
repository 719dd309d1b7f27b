"""The container that travels between the driver's phases: one GRPO batch.

``B`` prompts x ``n`` responses = ``N = B*n`` samples, ordered group by group
(sample ``i`` belongs to prompt ``group_index[i] = i // n``). It carries the
training records (with their per-sample ground truth), the sampled responses,
their rewards and reward components; :meth:`RolloutBatch.encode` turns it into
the model's tensors (:class:`rl.models.inputs.EncodedBatch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch


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
        """One (responses, ground truth, response token counts) task per prompt."""
        groups = []
        for g, record in enumerate(self.records):
            idx = [i for i, gi in enumerate(self.group_index) if gi == g]
            groups.append(([self.response_texts[i] for i in idx], record["ground_truth"],
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


def _stats(prefix: str, values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {f"{prefix}/mean": float(values.mean()), f"{prefix}/max": float(values.max()),
            f"{prefix}/min": float(values.min())}


def reward_metrics(batch: RolloutBatch, encoded: Any, advantages: torch.Tensor,
                   max_response_length: int) -> dict[str, float]:
    """verl-named data metrics: critic/score, reward/<component>, response_length, prompt_length."""
    mask = encoded.response_mask.bool()
    lengths = mask.sum(-1).double().numpy()
    prompt_lengths = (encoded.attention_mask.sum(-1) - encoded.response_mask.sum(-1)).double().numpy()
    valid_adv = advantages[mask].double().numpy()
    out: dict[str, float] = {}
    out.update(_stats("critic/score", batch.scores))
    out.update(_stats("critic/rewards", batch.scores))
    out.update(_stats("critic/advantages", valid_adv))
    out.update(_stats("response_length", lengths))
    out.update(_stats("prompt_length", prompt_lengths))
    out["response_length/clip_ratio"] = float(np.mean([r == "length" for r in batch.finish_reasons]))
    out["response_length/max_allowed"] = float(max_response_length)
    for name, values in batch.components.items():
        out[f"reward/{name}"] = float(values.mean())
    out["reward/failed"] = float(batch.reward_failures)
    out["reward/worker_restarts"] = float(batch.reward_restarts)
    # diversity/*: distinct responses / answers per group, valid answers, and the fraction of groups whose
    # n rewards are all equal (zero advantage: no learning signal), also logged under verl's name.
    from rl.diversity import group_metrics, is_grounding_record

    grounding = [is_grounding_record(batch.records[g]) for g in batch.group_index]
    out.update(group_metrics(batch.response_texts, batch.scores, batch.group_index, grounding))
    out["critic/solve_none_or_all"] = out["diversity/zero_variance_group_frac"]
    return out
