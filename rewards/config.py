"""The ``reward`` config section: which reward scores the rollouts, its parameters, fault handling.

Plain dataclass, no imports from the training engine: ``rl.config`` nests it in the run
configuration, and the reward pool reads it. ``Annotated[T, "<bound>"]`` states a field's
range and :meth:`RewardConfig.validate` the rules the registry decides (checked at
start-up by ``rl.schema``, the language is described there). The parameter dataclasses
themselves live in :mod:`rewards.params` (``Literal`` choice fields are checked the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Iterator, Literal

from rewards.params import RewardParams
from rewards.vision.config import SegmenterConfig


@dataclass
class RewardConfig:
    """The reward recipe, its parameters and the reward pool's fault handling."""

    # Built-in reward scoring the rollouts: a registered name (docs/rewards.md lists them with the keys they need).
    name: str = "visionreasoner"
    # Seconds before a reward call is considered lost and retried.
    timeout_s: Annotated[float, "> 0"] = 120.0
    # Attempts after the first before a group is marked reward_failed (score 0).
    max_retries: Annotated[int, ">= 0"] = 2
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    params: RewardParams = field(default_factory=RewardParams)
    # User reward "path/to/file.py:name": a function (response, sample, **function_kwargs) returning
    # {"score": total, <component>: value, ...} or a rewards.registry.Reward subclass (docs/rewards.md).
    # Set, it scores instead of reward.name's reward (reward.name still picks the samples' format).
    function: str = ""
    # Keyword arguments of reward.function (for a Reward subclass: its params).
    function_kwargs: dict[str, Any] = field(default_factory=dict)
    # A sample the reward cannot score (its ground truth lacks a key, ...): "error" stops the run naming
    # the reward, the sample id and the key; "skip" scores its group 0, marked invalid_sample.
    on_invalid_sample: Literal["error", "skip"] = "error"

    def validate(self) -> Iterator[tuple[str, str]]:
        """``name`` must be a registered reward; ``function`` must load and take ``function_kwargs``."""
        from rewards.registry import reward_names

        names = reward_names()
        if self.name not in names:
            yield "name", f"must be one of {list(names)}, got {self.name!r}"
        if self.function or self.function_kwargs:
            from rewards.errors import RewardConfigError
            from rewards.scorer import RewardScorer

            try:
                RewardScorer.from_config(self, build_models=False)
            except RewardConfigError as exc:   # its message starts with the key it is about
                text = str(exc)
                key = "function_kwargs" if text.startswith("reward.function_kwargs ") else "function"
                yield key, text.removeprefix(f"reward.{key} ")
