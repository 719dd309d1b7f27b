"""The metrics of one GRPO step, assembled from what the step produced (pure, no Ray).

A trained step logs, in this order::

    training/global_step, training/epoch
    critic/score, critic/rewards, critic/advantages    mean / max / min
    response_length (tokens), prompt_length (tokens)   mean / max / min
    response_length/clip_ratio, response_length/max_allowed
    reward/<component> (mean), reward/failed, reward/worker_restarts
    diversity/* (rl.diversity), critic/solve_none_or_all
    batch/*, critic/score_all/mean                     dynamic sampling only (rl.dynamic_sampling)
    actor/*                                            from the actor update
    training/rollout_probs_diff_*, rollout_corr/*      rollout correction only (rl.rollout_corr)
    timing_s/<phase>, timing_s/step, timing_busy_s/<phase>
    perf/total_num_tokens, perf/time_per_step, perf/throughput, perf/weight_sync_mb

A step whose dynamic sampling kept no group (no update, no weight sync) logs the same
frame with only ``batch/*``, ``critic/score_all/mean``, ``reward/failed`` and
``reward/worker_restarts`` as data and no ``perf/*``: both go through :func:`step_metrics`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from rl.batch import RolloutBatch
from rl.diversity import group_metrics, is_grounding_record

__all__ = ["stats", "reward_metrics", "reward_failure_metrics", "perf_metrics", "step_metrics"]


def stats(prefix: str, values: np.ndarray) -> dict[str, float]:
    """``<prefix>/mean``, ``/max``, ``/min`` of a 1-D array ({} when it is empty)."""
    if values.size == 0:
        return {}
    return {f"{prefix}/mean": float(values.mean()), f"{prefix}/max": float(values.max()),
            f"{prefix}/min": float(values.min())}


def reward_failure_metrics(rollout: RolloutBatch) -> dict[str, float]:
    """``reward/failed`` (response groups scored 0 after every retry failed) and
    ``reward/worker_restarts`` of the step's scoring."""
    return {"reward/failed": float(rollout.reward_failures), "reward/worker_restarts": float(rollout.reward_restarts)}


def reward_metrics(rollout: RolloutBatch, encoded: Any, advantages: torch.Tensor,
                   max_response_length: int) -> dict[str, float]:
    """Data metrics of a trained batch, verl's names: critic/score, reward/<component>,
    response_length, prompt_length, plus diversity/*.

    Args:
        rollout: the N scored responses.
        encoded: their :class:`rl.models.encoded_batch.EncodedBatch` (``attention_mask`` (N, P+R),
            ``response_mask`` (N, R)).
        advantages: (N, R); only the response tokens count.
        max_response_length: ``rollout.max_response_length``.
    """
    mask = encoded.response_mask.bool()
    lengths = mask.sum(-1).double().numpy()
    prompt_lengths = (encoded.attention_mask.sum(-1) - encoded.response_mask.sum(-1)).double().numpy()
    valid_adv = advantages[mask].double().numpy()
    out: dict[str, float] = {}
    out.update(stats("critic/score", rollout.scores))
    out.update(stats("critic/rewards", rollout.scores))
    out.update(stats("critic/advantages", valid_adv))
    out.update(stats("response_length", lengths))
    out.update(stats("prompt_length", prompt_lengths))
    out["response_length/clip_ratio"] = float(np.mean([r == "length" for r in rollout.finish_reasons]))
    out["response_length/max_allowed"] = float(max_response_length)
    for name, values in rollout.components.items():
        out[f"reward/{name}"] = float(values.mean())
    out.update(reward_failure_metrics(rollout))
    # diversity/*: distinct responses / answers per group, valid answers, and the fraction of groups whose
    # n rewards are all equal (zero advantage: no learning signal), also logged under verl's name.
    grounding = [is_grounding_record(rollout.records[g]) for g in rollout.group_index]
    out.update(group_metrics(rollout.response_texts, rollout.scores, rollout.group_index, grounding))
    out["critic/solve_none_or_all"] = out["diversity/zero_variance_group_frac"]
    return out


def perf_metrics(total_tokens: int, step_s: float, world_size: int, weight_sync_bytes: int) -> dict[str, float]:
    """Throughput of a trained step: tokens (prompt + response) per second per actor rank, and
    the megabytes sent to the rollout engines."""
    return {
        "perf/total_num_tokens": total_tokens,
        "perf/time_per_step": step_s,
        "perf/throughput": total_tokens / step_s / max(1, world_size),
        "perf/weight_sync_mb": weight_sync_bytes / 2**20,
    }


def step_metrics(step: int, epoch: int, data: Mapping[str, float], timing: Mapping[str, float], step_s: float,
                 busy: Mapping[str, float], perf: Mapping[str, float]) -> dict[str, float]:
    """The logged dict of one step.

    Args:
        step, epoch: ``training/global_step``, ``training/epoch``.
        data: the batch's metrics (reward, sampling, actor), in logging order.
        timing: ``timing_s/<phase>`` wall-clock seconds of the driver's phases.
        step_s: the step's wall-clock seconds (``timing_s/step``).
        busy: seconds the workers of a phase computed (``timing_busy_s/<phase>``).
        perf: :func:`perf_metrics` ({} for a step without update).
    """
    out: dict[str, float] = {"training/global_step": step, "training/epoch": epoch}
    out.update(data)
    out.update(timing)
    out["timing_s/step"] = step_s
    out.update({f"timing_busy_s/{k}": v for k, v in busy.items()})
    out.update(perf)
    return out
