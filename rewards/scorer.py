"""The run's reward as one object: what a reward worker scores with, and the start-up dry call.

:class:`RewardScorer` is built from the ``reward`` section of the run config (any
object with its attributes: ``name``, ``params``, ``segmenter``, ``function``,
``function_kwargs``): the built-in reward ``reward.name`` with
``reward.params.<name>``, or the user reward ``reward.function`` (:mod:`rewards.user`).
It scores one GRPO group at a time; an error that depends only on the sample
(:data:`rewards.errors.DETERMINISTIC_ERRORS`) comes out as an
:class:`~rewards.errors.InvalidSampleError` naming the reward, the sample id and the key.

:func:`check_reward_config` checks the section without any sample (config loading);
:func:`dry_run` scores a few built samples once in the driver before the reward
workers start, so a reward that does not fit the data stops the run in seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from rewards import gt as gt_mod
from rewards.errors import (DETERMINISTIC_ERRORS, InvalidSampleError, RewardConfigError, RewardOutputError,
                            error_detail, error_key)
from rewards.param_builder import build
from rewards.parsing import as_text
from rewards.registry import GroupContext, Reward, get_reward, reward_names, score_with
from rewards.user import check_output, check_signature, load_user_reward, resolve_spec

log = logging.getLogger(__name__)

#: Values of ``reward.on_invalid_sample``: stop the run, or score the group 0 and mark it.
ON_INVALID_SAMPLE = ("error", "skip")


def as_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """A training record (``{"id": ..., "ground_truth": ...}``); a bare ground truth becomes
    ``{"ground_truth": gt}``."""
    if isinstance(sample, Mapping) and "ground_truth" in sample:
        return dict(sample)
    return {"ground_truth": sample}


def sample_id(sample: Mapping[str, Any]) -> str:
    return str(sample.get("id", "?")) if isinstance(sample, Mapping) else "?"


def _function_kwargs(cfg: Any) -> dict[str, Any]:
    kwargs = getattr(cfg, "function_kwargs", None) or {}
    if type(kwargs).__name__ == "DictConfig":
        from omegaconf import OmegaConf

        kwargs = OmegaConf.to_container(kwargs, resolve=True)
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise RewardConfigError(f"reward.function_kwargs must be a mapping of names to values, got {kwargs!r}")
    return dict(kwargs)


@dataclass
class RewardScorer:
    """Scores groups with the built-in reward or the user reward of a run config (see the module docstring)."""

    label: str                                    # "reward 'name'" or "reward.function 'file.py:name'"
    reward: Reward | None = None                  # built-in or user Reward (None: a plain user function)
    params: Any = None                            # the reward's built params dataclass
    function: Callable[..., Any] | None = None    # plain user function
    kwargs: dict[str, Any] = field(default_factory=dict)
    spec: str = ""                                # reward.function, for messages
    segmenter: Any = None
    propagator: Any = None
    use_default_models: bool = True

    @classmethod
    def from_config(cls, cfg: Any, build_models: bool = True) -> "RewardScorer":
        """The scorer of reward section ``cfg``; ``build_models``: build the segmenter / propagator the
        reward declares it needs (reward workers), else score without models (the dry call)."""
        spec = getattr(cfg, "function", "") or ""
        if spec:
            kwargs = _function_kwargs(cfg)
            obj = load_user_reward(spec)
            scorer = cls(label=f"reward.function {spec!r}", kwargs=kwargs, spec=spec,
                         use_default_models=build_models)
            if isinstance(obj, Reward):
                try:
                    scorer.params = build(obj.params_cls, kwargs)
                except (TypeError, ValueError) as exc:
                    raise RewardConfigError(f"reward.function_kwargs for {spec!r}: {exc}") from exc
                scorer.reward = obj
            else:
                check_signature(obj, kwargs, spec)
                scorer.function = obj
        else:
            if _function_kwargs(cfg):
                raise RewardConfigError("reward.function_kwargs is set but reward.function is empty "
                                        f"(the built-in reward {cfg.name!r} takes reward.params.{cfg.name})")
            try:
                reward = get_reward(cfg.name)
            except KeyError:
                raise RewardConfigError(f"reward.name = {cfg.name!r}; expected one of {list(reward_names())} "
                                        "(or set reward.function=path/to/file.py:name)") from None
            params = getattr(getattr(cfg, "params", None), cfg.name, None)
            scorer = cls(label=f"reward {cfg.name!r}", reward=reward, params=build(reward.params_cls, params),
                         use_default_models=build_models)
        if build_models and scorer.reward is not None:
            scorer._build_models(getattr(cfg, "segmenter", None))
        return scorer

    def _build_models(self, segmenter_cfg: Any) -> None:
        if self.reward.needs_segmenter:
            from rewards.vision.factory import build_segmenter

            self.segmenter = build_segmenter(segmenter_cfg)
        if self.reward.needs_propagator:
            from rewards.vision.factory import default_propagator

            self.propagator = default_propagator()

    def score_group(self, responses: Sequence[Any], sample: Mapping[str, Any],
                    response_lengths: Sequence[int | None] | None = None) -> list[dict[str, float]]:
        """``{"score": ..., <component>: ...}`` per response of one group answering ``sample`` (a training
        record, or a bare ground truth). Raises :class:`InvalidSampleError` for a sample this reward cannot
        score; other errors propagate."""
        record = as_sample(sample)
        try:
            return self._score(list(responses), record, response_lengths)
        except DETERMINISTIC_ERRORS as exc:
            raise InvalidSampleError(self.label, sample_id(record), error_detail(exc), error_key(exc)) from exc

    def _score(self, responses: list[Any], record: dict[str, Any],
               response_lengths: Sequence[int | None] | None) -> list[dict[str, float]]:
        if self.function is not None:
            return [check_output(self.function(as_text(r), record, **self.kwargs), self.spec) for r in responses]
        lengths = [None] * len(responses) if response_lengths is None else list(response_lengths)
        if len(lengths) != len(responses):
            raise ValueError(f"'response_lengths' has {len(lengths)} entries for {len(responses)} responses")
        ctx = GroupContext(segmenter=self.segmenter, propagator=self.propagator,
                           use_default_models=self.use_default_models,
                           think_tokens=[None] * len(responses), response_lengths=lengths)
        return score_with(self.reward, responses, record["ground_truth"], self.params, ctx)

    def check_sample(self, sample: Mapping[str, Any]) -> None:
        """Full ground-truth check of one sample for a Reward (keys, types, decodable masks)."""
        record = as_sample(sample)
        if self.reward is None:
            return
        try:
            self.reward.check_ground_truth(gt_mod.load(record["ground_truth"]))
        except DETERMINISTIC_ERRORS as exc:
            raise InvalidSampleError(self.label, sample_id(record), error_detail(exc), error_key(exc)) from exc


def with_resolved_function(cfg: Any) -> Any:
    """``cfg`` (a dataclass) with ``reward.function``'s file path made absolute (against the current
    folder), so that reward workers started in another folder load the same file."""
    spec = getattr(cfg, "function", "") or ""
    if not spec:
        return cfg
    return dataclasses.replace(cfg, function=resolve_spec(spec))


def check_reward_config(cfg: Any) -> None:
    """Check the reward section without samples: ``reward.name``, ``reward.on_invalid_sample`` and, when
    set, that ``reward.function`` loads and takes ``reward.function_kwargs``. Raises
    :class:`RewardConfigError` naming the key."""
    if cfg.name not in reward_names():
        raise RewardConfigError(f"reward.name = {cfg.name!r}; expected one of {list(reward_names())}")
    policy = getattr(cfg, "on_invalid_sample", "error")
    if policy not in ON_INVALID_SAMPLE:
        raise RewardConfigError(f"reward.on_invalid_sample = {policy!r}; expected one of {list(ON_INVALID_SAMPLE)}")
    RewardScorer.from_config(cfg, build_models=False)


def probe_samples(*record_lists: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The first record of each task in each list (the samples :func:`dry_run` scores)."""
    picked: list[Mapping[str, Any]] = []
    for records in record_lists:
        seen: set[Any] = set()
        for record in records:
            task = record.get("task") if isinstance(record, Mapping) else None
            if task not in seen:
                seen.add(task)
                picked.append(record)
    return picked


@contextlib.contextmanager
def _model_skips_unreported() -> Iterator[None]:
    """The dry call scores without the vision models on purpose: keep its skipped model terms out of
    the logs and of :data:`rewards.vision.resolve.SKIP_COUNTS`."""
    from rewards.vision import resolve

    saved, level = resolve.SKIP_COUNTS.copy(), resolve.logger.level
    resolve.logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        resolve.logger.setLevel(level)
        resolve.SKIP_COUNTS.clear()
        resolve.SKIP_COUNTS.update(saved)


def dry_run(cfg: Any, samples: Sequence[Mapping[str, Any]]) -> None:
    """Score each of ``samples`` once with the reward of section ``cfg``, in this process, without models.

    Each sample's ground truth is checked in full against the reward's declarations, then one
    response (the sample's ``sft_target``, else an empty string) is scored and the result
    checked (a ``score`` and finite numbers). Raises :class:`RewardConfigError` for a bad
    reward section, :class:`InvalidSampleError` naming the reward, the sample id and the key
    for a sample the reward cannot score, and :class:`RewardOutputError` for a user reward
    that fails or returns the wrong keys.
    """
    scorer = RewardScorer.from_config(cfg, build_models=False)
    for sample in samples:
        record = as_sample(sample)
        scorer.check_sample(record)
        response = str(record.get("sft_target") or "")
        try:
            with _model_skips_unreported():
                rows = scorer.score_group([response], record, [None])
        except (InvalidSampleError, RewardConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the dry call stops the run, named
            raise RewardOutputError(f"{scorer.label} failed on sample {sample_id(record)!r}: "
                                    f"{type(exc).__name__}: {exc}") from exc
        if len(rows) != 1 or "score" not in rows[0]:
            raise RewardOutputError(f"{scorer.label} returned {rows!r} for one response of sample "
                                    f"{sample_id(record)!r}; expected one dict with 'score'")
    log.info("reward dry call: %s scored %d sample(s)", scorer.label, len(samples))
