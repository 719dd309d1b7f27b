"""Reward scoring for the ``cot`` and ``generate`` jobs: one scorer per reward name, built on first use.

A sample is scored by ``reward_override`` (``annotate.cot.reward`` / ``annotate.generate.reward``)
when set, else by its own ``"reward"`` field (the task's reward, :data:`data.samples.DEFAULT_REWARDS`
when a record lacks it). The scorer of reward ``name`` is :class:`rewards.scorer.RewardScorer` built from
the run's ``reward`` section with ``name`` swapped in (``reward.function`` / ``function_kwargs`` are
cleared: a named built-in reward scores), so its params are ``reward.params.<name>`` and its models
follow ``reward.segmenter`` (the propagator is the package default), exactly as the reward workers
of a training run build them.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping

from data.annotate.job import AnnotationJob

__all__ = ["RewardScorers", "ScoredJob", "reward_for", "reward_fits", "plain"]


def plain(obj: Any) -> Any:
    """A JSON-able copy of a dataclass / OmegaConf node / mapping / list (other values as they are)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if type(obj).__name__ in ("DictConfig", "ListConfig"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def reward_for(sample: Mapping[str, Any], reward_override: str = "") -> str:
    """The reward name that scores ``sample``: the override, else ``sample["reward"]``, else its task's default."""
    if reward_override:
        return reward_override
    if sample.get("reward"):
        return str(sample["reward"])
    from data.samples import DEFAULT_REWARDS

    task = sample.get("task")
    if task not in DEFAULT_REWARDS:
        raise ValueError(f"sample {sample.get('id', '?')!r} has no 'reward' and an unknown task {task!r}")
    return DEFAULT_REWARDS[task]


def reward_fits(sample: Mapping[str, Any], reward_override: str = "") -> bool:
    """Whether the reward of ``sample`` declares its task (a sample's own reward always does)."""
    if not reward_override:
        return True
    from rewards.registry import get_reward

    return sample.get("task") in get_reward(reward_override).tasks


class RewardScorers:
    """Scorers by reward name from a ``reward`` config section, each built once (models included)."""

    def __init__(self, reward_cfg: Any, build_models: bool = True):
        self.reward_cfg = reward_cfg
        self.build_models = build_models
        self._scorers: dict[str, Any] = {}

    def section(self, name: str) -> Any:
        """The ``reward`` section with ``name`` as the built-in reward (user function cleared)."""
        cfg = self.reward_cfg
        if dataclasses.is_dataclass(cfg):
            return dataclasses.replace(cfg, name=name, function="", function_kwargs={})
        out = copy.copy(cfg)
        for key, value in (("name", name), ("function", ""), ("function_kwargs", {})):
            setattr(out, key, value)
        return out

    def get(self, name: str) -> Any:
        """The :class:`rewards.scorer.RewardScorer` of reward ``name``."""
        if name not in self._scorers:
            from rewards.scorer import RewardScorer

            self._scorers[name] = RewardScorer.from_config(self.section(name), build_models=self.build_models)
        return self._scorers[name]

    def max_score(self, name: str) -> float:
        """Maximum score of reward ``name`` under its configured params."""
        from rewards.registry import max_score

        return float(max_score(name, self.get(name).params))

    def params(self, name: str) -> dict[str, Any]:
        """The built params of reward ``name`` as a JSON-able dict (``rewards.score`` rebuilds them from it)."""
        return plain(self.get(name).params)

    def score(self, name: str, responses: list[str], sample: Mapping[str, Any]) -> list[dict[str, float]]:
        """``{"score", <component>...}`` per response; raises :class:`rewards.errors.InvalidSampleError`
        when the reward cannot score ``sample``."""
        rows = self.get(name).score_group(responses, sample)
        return [{k: float(v) for k, v in row.items()} for row in rows]


class ScoredJob(AnnotationJob):
    """Base of the jobs whose answers a reward scores (``cot``, ``generate``): their config section is
    ``annotate.<name>`` (with a ``reward`` key), scorers are built lazily per reward name."""

    def __init__(self, cfg: Any, model_name: str, build_models: bool = True):
        super().__init__(cfg, model_name)
        self.job_cfg = getattr(cfg.annotate, self.name)
        self.scorers = RewardScorers(cfg.reward, build_models=build_models)

    def settings(self) -> dict[str, Any]:
        """The job's section plus what changes the scores: every reward's params and the segmenter."""
        out = super().settings()
        out["scoring"] = {"params": plain(self.cfg.reward.params), "segmenter": plain(self.cfg.reward.segmenter)}
        return out
