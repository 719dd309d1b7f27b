"""Registry of rewards by name, and the public entry points.

A reward is a :class:`Reward` subclass registered with :func:`register_reward`
(like verl's ``core_algos`` registries). It returns raw components per
response; this module combines them::

    score = multiplier * sum(weight_k * component_k for k in reward.terms(params))

where ``multiplier`` is the component named by ``reward.multiplier`` (VideoSeg-R1's
soft length factor) or 1. Each result dict holds ``"score"``, every weighted
component, and informational markers (e.g. ``"mask_iou_available"``).

Entry points::

    compute(name, response, ground_truth, **params) -> dict
    compute_group(name, responses, ground_truth, segmenter=None, propagator=None, **params) -> list[dict]
    get_reward(name) -> Reward
    max_score(name, params=None, **params) -> float
    score_range(name, params=None, **params) -> (min, max)
    build_params(name, params=None, **params) -> params dataclass

``params=`` takes the reward's params dataclass (or a mapping); flat keyword
params override it. Model terms use the ``segmenter`` / ``propagator`` given,
else the package defaults unless ``use_default_models=False``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rewards import gt as gt_mod
from rewards.param_builder import build
from rewards.parsing import as_text
from rewards.segmentation.base import Propagator, Segmenter


@dataclass(frozen=True)
class Term:
    """One weighted component: score contribution ``weight * value`` with ``value`` in ``[0, max_value]``."""

    weight: float
    max_value: float


@dataclass
class GroupContext:
    """Per-call inputs that are not reward parameters (models, token counts per response)."""

    segmenter: Segmenter | None = None
    propagator: Propagator | None = None
    use_default_models: bool = True
    think_tokens: list[int | None] = field(default_factory=list)
    response_lengths: list[int | None] = field(default_factory=list)


class Reward(ABC):
    """Base class of a registered reward (stateless; one instance per name)."""

    name: str = ""
    params_cls: type = object
    #: Component that multiplies the weighted sum (None: no multiplier). Must lie in [0, 1].
    multiplier: str | None = None

    @abstractmethod
    def terms(self, params: Any) -> dict[str, Term]:
        """Weighted components and their maxima."""

    @abstractmethod
    def score_group(self, responses: list[str], gt: dict, params: Any, ctx: GroupContext) -> list[dict[str, float]]:
        """Raw components (+ markers) of each response of one group sharing ``gt``. Never raises on responses."""


REWARD_REGISTRY: dict[str, Reward] = {}

# Modules that register rewards on import (imported lazily by get_reward).
_REWARD_MODULES = ("rewards.visionreasoner", "rewards.segzero", "rewards.rcot", "rewards.videoseg_r1",
                   "rewards.veason_r1", "rewards.dense_grounding")


def register_reward(name: str) -> Callable[[type[Reward]], type[Reward]]:
    """Class decorator: register one instance of a :class:`Reward` subclass under ``name``."""

    def decorator(cls: type[Reward]) -> type[Reward]:
        existing = REWARD_REGISTRY.get(name)
        if existing is not None and type(existing).__qualname__ != cls.__qualname__:
            raise ValueError(f"reward {name!r} is already registered by {type(existing).__qualname__}")
        cls.name = name
        REWARD_REGISTRY[name] = cls()
        return cls

    return decorator


def _load_builtin() -> None:
    for module in _REWARD_MODULES:
        importlib.import_module(module)


def get_reward(name: str) -> Reward:
    """The registered reward ``name`` (``KeyError`` listing the known names otherwise)."""
    if name not in REWARD_REGISTRY:
        _load_builtin()
    if name not in REWARD_REGISTRY:
        raise KeyError(f"unknown reward {name!r}; registered: {sorted(REWARD_REGISTRY)}")
    return REWARD_REGISTRY[name]


def build_params(name: str, params: Any = None, **overrides: Any) -> Any:
    """The params dataclass of reward ``name`` from ``params`` plus flat overrides (checked)."""
    return build(get_reward(name).params_cls, params, overrides)


def score_range(name: str, params: Any = None, **overrides: Any) -> tuple[float, float]:
    """Documented ``(min, max)`` of the score of reward ``name`` under ``params``."""
    reward = get_reward(name)
    terms = reward.terms(build(reward.params_cls, params, overrides)).values()
    low = sum(min(0.0, t.weight * t.max_value) for t in terms)
    high = sum(max(0.0, t.weight * t.max_value) for t in terms)
    return low, high


def max_score(name: str, params: Any = None, **overrides: Any) -> float:
    """Maximum score of reward ``name`` (7.0 for ``visionreasoner`` with the defaults)."""
    return score_range(name, params, **overrides)[1]


def _combine(reward: Reward, terms: dict[str, Term], components: dict[str, float]) -> dict[str, float]:
    total = sum(term.weight * components[key] for key, term in terms.items())
    if reward.multiplier is not None:
        total *= components[reward.multiplier]
    out = {"score": float(total)}
    out.update({key: float(value) for key, value in components.items()})
    return out


def _per_response(values: Sequence[Any] | None, n: int, name: str) -> list[Any]:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"'{name}' has {len(values)} entries for {n} responses")
    return values


def compute_group(
    name: str,
    responses: Sequence[Any],
    ground_truth: Any,
    segmenter: Segmenter | None = None,
    propagator: Propagator | None = None,
    *,
    params: Any = None,
    think_tokens: Sequence[int | None] | None = None,
    response_lengths: Sequence[int | None] | None = None,
    use_default_models: bool = True,
    **overrides: Any,
) -> list[dict[str, float]]:
    """Score the n responses of one GRPO group sharing ``ground_truth``.

    Model terms call the segmenter once per group (once per distinct keyframe
    for Veason-R1). ``think_tokens`` / ``response_lengths``: per-response token
    counts for VideoSeg-R1's length penalty. Returns one dict per response.
    """
    if isinstance(responses, (str, bytes)):
        raise TypeError("compute_group expects a sequence of responses, got a single string (use compute)")
    reward = get_reward(name)
    p = build(reward.params_cls, params, overrides)
    gt = gt_mod.load(ground_truth)
    texts = [as_text(r) for r in responses]
    ctx = GroupContext(
        segmenter=segmenter,
        propagator=propagator,
        use_default_models=use_default_models,
        think_tokens=_per_response(think_tokens, len(texts), "think_tokens"),
        response_lengths=_per_response(response_lengths, len(texts), "response_lengths"),
    )
    if not texts:
        return []
    terms = reward.terms(p)
    return [_combine(reward, terms, comps) for comps in reward.score_group(texts, gt, p, ctx)]


def compute(
    name: str,
    response: Any,
    ground_truth: Any,
    *,
    params: Any = None,
    segmenter: Segmenter | None = None,
    propagator: Propagator | None = None,
    think_tokens: int | None = None,
    response_length: int | None = None,
    use_default_models: bool = True,
    **overrides: Any,
) -> dict[str, float]:
    """Score one response: ``{"score": total, <component>: value, ...}``."""
    return compute_group(
        name,
        [response],
        ground_truth,
        segmenter,
        propagator,
        params=params,
        think_tokens=[think_tokens],
        response_lengths=[response_length],
        use_default_models=use_default_models,
        **overrides,
    )[0]
