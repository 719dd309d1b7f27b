"""Verifiable rewards of VideoSeg-R1, RCoT-Seg, Veason-R1 (and VisionReasoner / Seg-Zero).

Public API (stable):

    rewards.compute(name, response, ground_truth, **params) -> dict   # "score" + one key per component
    rewards.compute_group(name, responses, ground_truth, segmenter=None, propagator=None, **params) -> list[dict]
    rewards.get_reward(name), rewards.max_score(name, params=None), rewards.score_range(name, params=None)
    rewards.matching.hungarian_accuracy(pred, gt, eta=0.5, gamma_box=10.0, gamma_pt=30.0, weights=(1,1,1))

Ground-truth format: :mod:`rewards.gt`. Command line: ``python -m rewards.score``.
"""

REWARD_NAMES = ("visionreasoner", "segzero_strict", "rcot_ktg", "rcot_aks", "videoseg_r1", "veason_r1",
                "dense_grounding")

from rewards.registry import build_params, compute, compute_group, get_reward, max_score, score_range  # noqa: E402

__all__ = ["REWARD_NAMES", "build_params", "compute", "compute_group", "get_reward", "max_score", "score_range"]
