"""Verifiable rewards of VideoSeg-R1, RCoT-Seg, Veason-R1 (and VisionReasoner / Seg-Zero).

Public API (stable):

    rewards.compute(name, response, ground_truth, **params) -> dict   # "score" + one key per component
    rewards.matching.hungarian_accuracy(pred, gt, eta=0.5, gamma_box=10.0, gamma_pt=30.0, weights=(1,1,1))
"""

REWARD_NAMES = ("visionreasoner", "segzero_strict", "rcot_ktg", "rcot_aks", "videoseg_r1", "veason_r1")

from rewards.registry import compute, get_reward, max_score  # noqa: E402

__all__ = ["REWARD_NAMES", "compute", "get_reward", "max_score"]
