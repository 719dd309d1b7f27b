"""User rewards from a file: ``reward.function=path/to/file.py:name`` plus ``reward.function_kwargs``.

``name`` in the file is one of:

* a **function** ``fn(response: str, sample: dict, **function_kwargs) -> dict[str, float]``,
  called once per response. ``sample`` is the training record the response answers
  (``id``, ``task``, ``query``, ``ground_truth``, ...; do not modify it). The returned
  dict must hold ``"score"``, the total reward the advantages are computed from, and may
  hold any other components (logged as ``reward/<key>``); every value must be a finite
  number (bools count as 0/1). The keys :data:`RESERVED_KEYS` belong to the reward pool.
* a :class:`rewards.registry.Reward` **subclass** (or an instance of one): scored like a
  built-in reward (components combined by its ``terms``); ``function_kwargs`` build its
  ``params_cls``; its ``needs_segmenter`` / ``needs_propagator`` give the reward workers
  their models.

The file is imported with :mod:`importlib` from its path, in every process that
scores (each Ray reward worker loads it itself), so it must exist at the same
absolute path on every node. A relative path is resolved against the current
folder of the driver (:func:`resolve_spec`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Union

from rewards.errors import RewardConfigError, RewardOutputError
from rewards.registry import Reward, check_declarations

#: Result keys the reward pool itself writes (a failed / skipped group's markers).
RESERVED_KEYS = ("reward_failed", "invalid_sample")

UserReward = Union[Reward, Callable[..., Mapping[str, Any]]]

_MODULES: dict[str, ModuleType] = {}   # absolute path -> module loaded from it (one import per process)


def split_spec(spec: str) -> tuple[Path, str]:
    """``"path/to/file.py:name"`` -> (path, name); a malformed spec is a :class:`RewardConfigError`."""
    path, sep, name = str(spec).rpartition(":")
    if not sep or not path or not name.isidentifier() or not path.endswith(".py"):
        raise RewardConfigError(f"reward.function = {spec!r} must be 'path/to/file.py:name' (a .py file and the "
                                "name of a function or Reward class in it)")
    return Path(path), name


def resolve_spec(spec: str) -> str:
    """``spec`` with its file path made absolute (against the current folder); empty stays empty."""
    if not spec:
        return spec
    path, name = split_spec(spec)
    return f"{path.expanduser().resolve()}:{name}"


def _load_module(path: Path, spec: str) -> ModuleType:
    path = path.expanduser().resolve()
    key = str(path)
    if key in _MODULES:
        return _MODULES[key]
    if not path.is_file():
        raise RewardConfigError(f"reward.function = {spec!r}: file {str(path)!r} does not exist")
    module_name = "user_reward_" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise RewardConfigError(f"reward.function = {spec!r}: cannot import {str(path)!r}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module       # dataclasses and pickling look classes up by module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise RewardConfigError(f"reward.function = {spec!r}: importing {str(path)!r} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    _MODULES[key] = module
    return module


def load_user_reward(spec: str) -> UserReward:
    """The function or :class:`Reward` instance named by ``spec`` (``"path/to/file.py:name"``).

    Raises :class:`RewardConfigError` naming ``reward.function`` when the file does not
    exist or does not import, the name is absent, or it is neither a function nor a Reward.
    """
    path, name = split_spec(spec)
    module = _load_module(path, spec)
    if not hasattr(module, name):
        public = sorted(k for k in vars(module) if not k.startswith("_"))
        raise RewardConfigError(f"reward.function = {spec!r}: {str(path)!r} defines no {name!r} "
                                f"(it defines {public})")
    obj = getattr(module, name)
    if isinstance(obj, type) and issubclass(obj, Reward):
        obj = obj()
    if isinstance(obj, Reward):
        if not obj.name:
            obj.name = name
        try:
            check_declarations(obj.name, type(obj))
        except (TypeError, ValueError) as exc:
            raise RewardConfigError(f"reward.function = {spec!r}: {exc}") from exc
        return obj
    if callable(obj) and not isinstance(obj, type):
        return obj
    raise RewardConfigError(f"reward.function = {spec!r}: {name!r} is a {type(obj).__name__}, not a function "
                            "(response, sample, **kwargs) -> dict or a rewards.registry.Reward subclass")


def check_signature(fn: Callable[..., Any], kwargs: Mapping[str, Any], spec: str) -> None:
    """Raise :class:`RewardConfigError` unless ``fn(response, sample, **kwargs)`` binds."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # no introspectable signature (a builtin): the dry call checks it
    try:
        signature.bind("", {}, **dict(kwargs))
    except TypeError as exc:
        raise RewardConfigError(f"reward.function = {spec!r} cannot be called as fn(response, sample, "
                                f"**reward.function_kwargs) with function_kwargs {sorted(kwargs)}: {exc}") from exc


def check_output(out: Any, spec: str) -> dict[str, float]:
    """A user function's result as ``{key: float}``; raises :class:`RewardOutputError` naming what is wrong."""
    if not isinstance(out, Mapping):
        raise RewardOutputError(f"reward.function = {spec!r} returned a {type(out).__name__}; it must return a "
                                'dict such as {"score": 1.0, "my_component": 1.0}')
    if "score" not in out:
        raise RewardOutputError(f"reward.function = {spec!r} returned keys {sorted(map(str, out))} without "
                                "'score' (the total reward; other keys are logged components)")
    result: dict[str, float] = {}
    for key, value in out.items():
        if not isinstance(key, str) or key in RESERVED_KEYS:
            raise RewardOutputError(f"reward.function = {spec!r} returned key {key!r}; keys must be str other "
                                    f"than {list(RESERVED_KEYS)}")
        if not isinstance(value, Real) or not math.isfinite(float(value)):
            raise RewardOutputError(f"reward.function = {spec!r} returned {key!r} = {value!r}; every value "
                                    "must be a finite number")
        result[key] = float(value)
    return result
