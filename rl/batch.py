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
    # Fraction of groups whose n rewards are all equal (zero advantage: no learning signal).
    scores = batch.scores.reshape(-1, batch.n) if len(batch.scores) else np.zeros((0, batch.n))
    out["critic/solve_none_or_all"] = float(np.mean(scores.std(axis=1) == 0)) if len(scores) else 0.0
    return out
