"""Verifiable rewards of VideoSeg-R1, RCoT-Seg, Veason-R1 (and VisionReasoner / Seg-Zero).

Public API (stable):

    rewards.compute(name, response, ground_truth, **params) -> dict   # "score" + one key per component
    rewards.compute_group(name, responses, ground_truth, segmenter=None, propagator=None, **params) -> list[dict]
    rewards.get_reward(name), rewards.max_score(name, params=None), rewards.score_range(name, params=None)
    rewards.REWARD_NAMES                      # the built-in rewards, derived from their registrations
    rewards.dry_run(reward_cfg, samples)      # score samples once with the run's reward, or raise naming the problem
    rewards.matching.hungarian_accuracy(pred, gt, eta=0.5, gamma_box=10.0, gamma_pt=30.0, weights=(1,1,1))

Ground-truth format: :mod:`rewards.gt`. Command line: ``python -m rewards.score``.
Adding a reward, user rewards from a file: ``docs/rewards.md``.
"""

from typing import Any

from rewards.registry import build_params, compute, compute_group, get_reward, max_score, score_range


def __getattr__(name: str) -> Any:
    if name == "REWARD_NAMES":   # derived on use: the reward modules import this package
        from rewards.registry import reward_names

        return reward_names(builtin_only=True)
    if name == "dry_run":
        from rewards.scorer import dry_run

        return dry_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REWARD_NAMES", "build_params", "compute", "compute_group", "dry_run", "get_reward", "max_score",
           "score_range"]
