"""How many training samples carry a stored task difficulty, logged once when a run starts.

VideoSeg-R1's soft length penalty gives each sample the reasoning-token budget of its
difficulty level, from ``ground_truth["difficulty"]`` (D in [1, 10], written by
``python -m launch.annotate difficulty``); a sample without one uses the reward's
``default_difficulty``. :func:`log_difficulty_coverage` says so in one warning per run
(never per sample) and counts the stored levels in one info line. It only logs: the reward
itself reads the difficulty (:func:`rewards.gt.difficulty`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from rl.config import Config

log = logging.getLogger(__name__)

__all__ = ["DifficultyCoverage", "difficulty_coverage", "log_difficulty_coverage"]

#: Level names, easiest first.
LEVELS = ("easy", "medium", "hard")


@dataclass
class DifficultyCoverage:
    """Stored difficulties of a run's training samples.

    total: training samples; missing: those without ``ground_truth["difficulty"]``; levels:
    ``{"easy": n, "medium": n, "hard": n}`` of the stored ones (empty when the reward's params
    have no ``tau_easy`` / ``tau_hard``); invalid: stored values that are not numbers (the
    reward's own sample check reports them); reward: the reward name; default: its
    ``default_difficulty``; thresholds: its ``(tau_easy, tau_hard)`` when it has them.
    """

    reward: str
    default: float
    thresholds: tuple[float, float] | None = None
    total: int = 0
    missing: int = 0
    invalid: int = 0
    levels: dict[str, int] = field(default_factory=dict)


def _reward_params(cfg: Config) -> Optional[Any]:
    """The params of the run's built-in reward when they have a ``default_difficulty`` (else None)."""
    if cfg.reward.function:   # a user reward scores; the built-in params are not its params
        return None
    params = getattr(cfg.reward.params, cfg.reward.name, None)
    return params if params is not None and hasattr(params, "default_difficulty") else None


def difficulty_coverage(cfg: Config, records: Sequence[dict[str, Any]]) -> Optional[DifficultyCoverage]:
    """Count the stored difficulties of ``records``; None when the run's reward reads none."""
    from rewards.gt import GroundTruthError, difficulty
    from rewards.videoseg_r1 import difficulty_level   # the levels of the reward's token budget

    params = _reward_params(cfg)
    if params is None:
        return None
    taus = (getattr(params, "tau_easy", None), getattr(params, "tau_hard", None))
    cov = DifficultyCoverage(cfg.reward.name, float(params.default_difficulty), total=len(records))
    if None not in taus:
        cov.thresholds = (float(taus[0]), float(taus[1]))
        cov.levels = dict.fromkeys(LEVELS, 0)
    for record in records:
        gt = record.get("ground_truth")
        if not isinstance(gt, dict) or gt.get("difficulty") is None:
            cov.missing += 1
            continue
        try:
            d = difficulty(gt, cov.default)
        except GroundTruthError:
            cov.invalid += 1
            continue
        if cov.levels:
            cov.levels[difficulty_level(d, *taus)] += 1
    return cov


def log_difficulty_coverage(cfg: Config, records: Sequence[dict[str, Any]]) -> Optional[DifficultyCoverage]:
    """One warning when some training samples lack a difficulty, one info line with the stored
    levels; nothing when the run's reward has no ``default_difficulty``. Returns the counts."""
    cov = difficulty_coverage(cfg, records)
    if cov is None:
        return None
    if cov.missing:
        log.warning("%d of %d training samples carry no task difficulty (run `python -m launch.annotate "
                    "difficulty`); they use reward.params.%s.default_difficulty = %s",
                    cov.missing, cov.total, cov.reward, cov.default)
    stored = cov.total - cov.missing
    if stored and cov.levels:
        log.info("task difficulty stored for %d of %d training samples: %s (tau_easy %s, tau_hard %s)",
                 stored, cov.total, ", ".join(f"{level} {cov.levels[level]}" for level in LEVELS)
                 + (f", not a number {cov.invalid}" if cov.invalid else ""), *cov.thresholds)
    return cov
