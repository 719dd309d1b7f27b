"""Registry of rewards by name, the declarations every reward carries, and the public entry points.

A reward is a :class:`Reward` subclass registered with :func:`register_reward`.
The class declares everything the rest of the project needs to know about it
(``docs/rewards.md``, "Adding a reward")::

    @register_reward("my_reward")
    class MyReward(Reward):
        params_cls = MyParams        # typed parameters: reward.params.my_reward in the run config
        gt_keys = ("objects",)       # ground-truth keys every scored sample must carry
        tasks = ("ktg",)             # sample tasks (data.task) whose records it scores
        needs_segmenter = False      # reward workers build the keyframe segmenter (mask terms)
        needs_propagator = False     # ... and the video mask propagator (temporal terms)

Derived from these declarations (nothing else lists the rewards):
:func:`reward_names` / ``rewards.REWARD_NAMES``, :func:`required_gt_keys` (used by
:func:`rewards.gt.validate`), :func:`mask_rewards` / :func:`video_rewards` (which
models a reward worker builds), :func:`task_rewards` (``data.samples``), and the
``reward.params`` section of the run config (``rewards.params.RewardParams``, hence
``configs/default.yaml``). The built-in rewards are found by a scan of the package
(:func:`builtin_modules`): every top-level module of ``rewards/`` with a line that
starts with ``@register_reward(`` is imported, in module-name order, so adding a
reward is adding its file (and its test).

Scores: a reward returns raw components per response; this module combines them::

    score = multiplier * sum(weight_k * component_k for k in reward.terms(params) if k not in unscaled)
            + sum(weight_k * component_k for k in unscaled)

where ``multiplier`` is the component named by ``reward.multiplier`` (VideoSeg-R1's
soft length factor) or 1, and ``unscaled = reward.unscaled_terms(params)`` (empty unless
the reward says so; VideoSeg-R1's negative-point term by default). Each result dict holds
``"score"``, every weighted component, and informational markers (e.g. ``"mask_iou_available"``).

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

import dataclasses
import importlib
import itertools
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rewards import gt as gt_mod
from rewards.param_builder import build
from rewards.parsing import as_text
from rewards.vision.base import Propagator, Segmenter

_PACKAGE_DIR = Path(__file__).resolve().parent
_REGISTERS = re.compile(r"^@register_reward\(", re.MULTILINE)
_BUILTIN_MODULES: tuple[str, ...] | None = None


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


@dataclass
class NoParams:
    """Parameters of a reward that has none."""


class Reward(ABC):
    """Base class of a reward (stateless; one instance per registered name).

    Subclasses set the class attributes below and implement :meth:`terms` and
    :meth:`score_group`; :meth:`check_ground_truth` may add type checks.
    """

    name: str = ""
    #: Dataclass of the reward's parameters (``reward.params.<name>`` in the run config).
    params_cls: type = NoParams
    #: Component that multiplies the weighted sum (None: no multiplier). Must lie in [0, 1].
    multiplier: str | None = None
    #: Ground-truth keys every sample scored by this reward must carry.
    gt_keys: tuple[str, ...] = ()
    #: Sample tasks (``data.task``: ktg | aks | veason) whose records this reward scores.
    tasks: tuple[str, ...] = ()
    #: The reward workers build a keyframe segmenter for this reward (mask-IoU terms).
    needs_segmenter: bool = False
    #: The reward workers build a video mask propagator for this reward (temporal terms).
    needs_propagator: bool = False

    @abstractmethod
    def terms(self, params: Any) -> dict[str, Term]:
        """Weighted components and their maxima."""

    def unscaled_terms(self, params: Any) -> frozenset[str]:
        """Terms added after :attr:`multiplier` is applied (default none: it scales every term)."""
        return frozenset()

    @abstractmethod
    def score_group(self, responses: list[str], gt: dict, params: Any, ctx: GroupContext) -> list[dict[str, float]]:
        """Raw components (+ markers) of each response of one group sharing ``gt``. Never raises on responses."""

    def check_ground_truth(self, gt: dict) -> None:
        """Raise :class:`rewards.gt.GroundTruthError` naming the key unless ``gt`` fits this reward.

        The default checks that every key of :attr:`gt_keys` is present; rewards override
        it (calling ``super()``) to check types and decode masks."""
        check_keys(self.name, gt, self.gt_keys)


def check_keys(reward_name: str, gt: dict, keys: Sequence[str]) -> None:
    """Raise :class:`rewards.gt.GroundTruthError` (with ``key``) for the first of ``keys`` absent from ``gt``."""
    for key in keys:
        if key not in gt:
            raise gt_mod.GroundTruthError(f"ground truth for '{reward_name}' lacks key '{key}'", key=key)


REWARD_REGISTRY: dict[str, Reward] = {}
_ORDER: dict[str, int] = {}          # name -> registration sequence number
_SEQUENCE = itertools.count()


def check_declarations(name: str, cls: type) -> None:
    if not name or not isinstance(name, str):
        raise ValueError(f"reward name must be a non-empty str, got {name!r}")
    if not dataclasses.is_dataclass(cls.params_cls):
        raise TypeError(f"reward {name!r}: params_cls must be a dataclass, got {cls.params_cls!r}")
    for attr in ("gt_keys", "tasks"):
        value = getattr(cls, attr)
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"reward {name!r}: {attr} must be a tuple of str, got {value!r}")


def register_reward(name: str) -> Callable[[type[Reward]], type[Reward]]:
    """Class decorator: register one instance of a :class:`Reward` subclass under ``name``."""

    def decorator(cls: type[Reward]) -> type[Reward]:
        existing = REWARD_REGISTRY.get(name)
        if existing is not None and type(existing).__qualname__ != cls.__qualname__:
            raise ValueError(f"reward {name!r} is already registered by {type(existing).__qualname__}")
        check_declarations(name, cls)
        cls.name = name
        REWARD_REGISTRY[name] = cls()
        _ORDER.setdefault(name, next(_SEQUENCE))
        return cls

    return decorator


def scan_reward_modules(directory: Path, package: str) -> tuple[str, ...]:
    """Dotted names of the ``directory/*.py`` modules with a line starting with ``@register_reward(``,
    sorted by name (the files are read as text, nothing is imported)."""
    return tuple(f"{package}.{path.stem}" for path in sorted(Path(directory).glob("*.py"))
                 if path.stem != "registry" and _REGISTERS.search(path.read_text(encoding="utf-8")))


def builtin_modules() -> tuple[str, ...]:
    """The modules that define the built-in rewards: :func:`scan_reward_modules` of this package
    (top level only), once per process."""
    global _BUILTIN_MODULES
    if _BUILTIN_MODULES is None:
        _BUILTIN_MODULES = scan_reward_modules(_PACKAGE_DIR, __package__ or "rewards")
    return _BUILTIN_MODULES


def _load_builtin() -> None:
    for module in builtin_modules():
        importlib.import_module(module)


def _sort_key(name: str) -> tuple[int, int]:
    modules = builtin_modules()
    module = type(REWARD_REGISTRY[name]).__module__
    rank = modules.index(module) if module in modules else len(modules)
    return rank, _ORDER[name]


def reward_names(builtin_only: bool = False) -> tuple[str, ...]:
    """Names of the registered rewards: the built-ins by module name (then registration order within a
    module), then the others in registration order."""
    _load_builtin()
    names = sorted(REWARD_REGISTRY, key=_sort_key)
    if builtin_only:
        names = [n for n in names if type(REWARD_REGISTRY[n]).__module__ in builtin_modules()]
    return tuple(names)


def get_reward(name: str) -> Reward:
    """The registered reward ``name`` (``KeyError`` listing the known names otherwise)."""
    if name not in REWARD_REGISTRY:
        _load_builtin()
    if name not in REWARD_REGISTRY:
        raise KeyError(f"unknown reward {name!r}; registered: {sorted(REWARD_REGISTRY)}")
    return REWARD_REGISTRY[name]


def required_gt_keys(name: str) -> tuple[str, ...]:
    """Ground-truth keys reward ``name`` needs (its ``gt_keys``)."""
    return get_reward(name).gt_keys


def mask_rewards() -> frozenset[str]:
    """Names of the rewards whose workers need a keyframe segmenter."""
    return frozenset(n for n in reward_names() if REWARD_REGISTRY[n].needs_segmenter)


def video_rewards() -> frozenset[str]:
    """Names of the rewards whose workers need a video mask propagator."""
    return frozenset(n for n in reward_names() if REWARD_REGISTRY[n].needs_propagator)


def task_rewards(task: str) -> tuple[str, ...]:
    """Names of the rewards that score the records of sample task ``task``."""
    return tuple(n for n in reward_names() if task in REWARD_REGISTRY[n].tasks)


def builtin_params() -> list[tuple[str, type]]:
    """``(name, params_cls)`` of every built-in reward, in config order."""
    return [(n, REWARD_REGISTRY[n].params_cls) for n in reward_names(builtin_only=True)]


def reward_table() -> str:
    """Markdown table of the built-in rewards and their declarations (``docs/rewards.md`` holds a copy,
    checked by the tests)."""
    rows = ["| reward | params class | ground-truth keys | tasks | models | max score (defaults) |",
            "|---|---|---|---|---|---|"]
    for name in reward_names(builtin_only=True):
        reward = REWARD_REGISTRY[name]
        models = [m for m, needed in (("segmenter", reward.needs_segmenter), ("propagator", reward.needs_propagator))
                  if needed]
        rows.append(f"| `{name}` | `{reward.params_cls.__name__}` | {', '.join(f'`{k}`' for k in reward.gt_keys)} "
                    f"| {', '.join(reward.tasks)} | {', '.join(models) or '-'} "
                    f"| {reward_score_range(reward, reward.params_cls())[1]:g} |")
    return "\n".join(rows) + "\n"


def build_params(name: str, params: Any = None, **overrides: Any) -> Any:
    """The params dataclass of reward ``name`` from ``params`` plus flat overrides (checked)."""
    return build(get_reward(name).params_cls, params, overrides)


def reward_score_range(reward: Reward, params: Any) -> tuple[float, float]:
    """Documented ``(min, max)`` of ``reward``'s score under a built params instance."""
    terms = reward.terms(params).values()
    low = sum(min(0.0, t.weight * t.max_value) for t in terms)
    high = sum(max(0.0, t.weight * t.max_value) for t in terms)
    return low, high


def score_range(name: str, params: Any = None, **overrides: Any) -> tuple[float, float]:
    """Documented ``(min, max)`` of the score of reward ``name`` under ``params``."""
    reward = get_reward(name)
    return reward_score_range(reward, build(reward.params_cls, params, overrides))


def max_score(name: str, params: Any = None, **overrides: Any) -> float:
    """Maximum score of reward ``name`` (7.0 for ``visionreasoner`` with the defaults)."""
    return score_range(name, params, **overrides)[1]


def _combine(reward: Reward, terms: dict[str, Term], components: dict[str, float],
             unscaled: frozenset[str] = frozenset()) -> dict[str, float]:
    total = sum(term.weight * components[key] for key, term in terms.items() if key not in unscaled)
    if reward.multiplier is not None:
        total *= components[reward.multiplier]
    if unscaled:
        total += sum(terms[key].weight * components[key] for key in terms if key in unscaled)
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


def score_with(
    reward: Reward,
    responses: Sequence[Any],
    ground_truth: Any,
    params: Any,
    ctx: GroupContext,
) -> list[dict[str, float]]:
    """Score one group with a :class:`Reward` instance (registered or not) and a built params instance.

    ``ctx`` carries the models and the per-response token counts (one entry per response).
    Raises :class:`rewards.gt.GroundTruthError` (with ``key``) when the ground truth lacks
    one of the reward's ``gt_keys``."""
    gt = gt_mod.load(ground_truth)
    check_keys(reward.name, gt, reward.gt_keys)
    texts = [as_text(r) for r in responses]
    if not texts:
        return []
    terms = reward.terms(params)
    unscaled = frozenset(reward.unscaled_terms(params)) if reward.multiplier is not None else frozenset()
    return [_combine(reward, terms, comps, unscaled) for comps in reward.score_group(texts, gt, params, ctx)]


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
    n = len(responses)
    ctx = GroupContext(
        segmenter=segmenter,
        propagator=propagator,
        use_default_models=use_default_models,
        think_tokens=_per_response(think_tokens, n, "think_tokens"),
        response_lengths=_per_response(response_lengths, n, "response_lengths"),
    )
    return score_with(reward, responses, ground_truth, p, ctx)


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

