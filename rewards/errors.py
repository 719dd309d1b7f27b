"""Errors of reward scoring that retrying cannot fix.

A ground truth that lacks a key, a user reward that returns the wrong keys or a
bad reward setting fails the same way on every attempt: the reward pool does not
retry these (``reward.on_invalid_sample``), and the start-up dry call
(:func:`rewards.scorer.dry_run`) reports them before training.
"""

from __future__ import annotations

from rewards.gt import GroundTruthError


class RewardConfigError(ValueError):
    """The ``reward`` section of the run config is wrong (the message names the key)."""


class RewardOutputError(ValueError):
    """A user reward returned something other than ``{"score": number, <component>: number, ...}``."""


class InvalidSampleError(ValueError):
    """Reward ``reward`` cannot score sample ``sample_id``; ``key`` names the missing / bad key when known."""

    def __init__(self, reward: str, sample_id: str, detail: str, key: str | None = None):
        self.reward = reward
        self.sample_id = sample_id
        self.detail = detail
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.reward} cannot score sample {self.sample_id!r}: {self.detail}"
        if self.key is not None and f"'{self.key}'" not in self.detail:
            text += f" (key '{self.key}')"
        return text

    def __reduce__(self):  # errors travel back from the Ray reward workers
        return type(self), (self.reward, self.sample_id, self.detail, self.key)


#: Exceptions raised while scoring that depend only on the sample and the config, never on
#: the worker: a ground truth of the wrong format, a missing sample field (KeyError /
#: IndexError), a user reward's bad output, a bad reward setting.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    GroundTruthError, LookupError, RewardOutputError, RewardConfigError,
)


def error_key(exc: BaseException) -> str | None:
    """The key an error is about: ``GroundTruthError.key``, a ``KeyError``'s key, else None."""
    key = getattr(exc, "key", None)
    if key is None and isinstance(exc, KeyError) and exc.args:
        key = exc.args[0]
    return None if key is None else str(key)


def error_detail(exc: BaseException) -> str:
    """One line describing ``exc`` (``KeyError('answer')`` becomes "missing key 'answer'")."""
    if isinstance(exc, KeyError) and exc.args:
        return f"missing key {exc.args[0]!r} (KeyError)"
    if isinstance(exc, (GroundTruthError, RewardOutputError, RewardConfigError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
