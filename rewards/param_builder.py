"""Build a reward's params dataclass from an instance, a mapping and/or flat keyword overrides.

Overrides may name a field of the params class, a dotted path into a nested
params dataclass (``"base.iou_threshold"``), or a field of a nested params
dataclass directly when the name is unique (``iou_threshold`` for
``VideoSegR1Params.base.iou_threshold``). Unknown names and wrongly typed
values raise ``TypeError`` naming the key; bad choices raise ``ValueError``.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Sequence

_CHOICES = {"invalid_item_policy": ("zero", "unmatched")}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _field_default(owner: type, key: str) -> Any:
    """The default of field ``key`` of dataclass ``owner`` (a fresh one for a ``default_factory``)."""
    f = next(f for f in dataclasses.fields(owner) if f.name == key)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return copy.deepcopy(f.default)


def _check_value(owner: type, key: str, hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return copy.deepcopy(value)
        if isinstance(value, Mapping):
            # Keys not given keep the owner's default for this field (VideoSegR1Params.base has alpha_iou = 0).
            default = _field_default(owner, key)
            instance = default if isinstance(default, hint) else hint()
            for name, item in value.items():
                set_param(instance, str(name), item, f"{path}.")
            return instance
        raise TypeError(f"reward parameter '{path}' must be a {hint.__name__} or a mapping, got {type(value).__name__}")
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        ok = isinstance(value, (list, tuple)) and (item_hint is Any or all(isinstance(v, item_hint) for v in value))
        value = list(value) if ok else value
    else:
        ok = True
    if not ok:
        raise TypeError(f"reward parameter '{path}' must be {getattr(hint, '__name__', hint)}, got {value!r}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ValueError(f"reward parameter '{path}' = {value!r}; expected one of {list(_CHOICES[key])}")
    return value


def from_mapping(cls: type, values: Mapping, prefix: str = "") -> Any:
    """``cls(**values)`` with nested mappings converted and every key/type checked."""
    instance = cls()
    for key, value in values.items():
        set_param(instance, str(key), value, prefix)
    return instance


def _nested_owners(instance: Any, key: str) -> list[Any]:
    owners = []
    for f in dataclasses.fields(instance):
        child = getattr(instance, f.name)
        if dataclasses.is_dataclass(child):
            if key in {g.name for g in dataclasses.fields(child)}:
                owners.append(child)
            owners.extend(_nested_owners(child, key))
    return owners


def set_param(instance: Any, key: str, value: Any, prefix: str = "") -> None:
    """Set one (possibly dotted or nested-unique) parameter on a params dataclass instance, checked."""
    cls = type(instance)
    names = {f.name for f in dataclasses.fields(instance)}
    if "." in key:
        head, rest = key.split(".", 1)
        child = getattr(instance, head, None) if head in names else None
        if not dataclasses.is_dataclass(child):
            raise TypeError(f"unknown reward parameter '{prefix}{key}' for {cls.__name__}")
        set_param(child, rest, value, f"{prefix}{head}.")
        return
    if key in names:
        setattr(instance, key, _check_value(cls, key, _hints(cls)[key], value, prefix + key))
        return
    owners = _nested_owners(instance, key)
    if len(owners) == 1:
        set_param(owners[0], key, value, prefix)
        return
    allowed = sorted(names)
    raise TypeError(f"unknown reward parameter '{prefix}{key}' for {cls.__name__}; expected one of {allowed}")


def build(cls: type, params: Any = None, overrides: Mapping[str, Any] | None = None) -> Any:
    """A fresh ``cls`` instance from ``params`` (None, a ``cls`` instance or a mapping) plus ``overrides``."""
    if type(params).__name__ == "DictConfig":  # an OmegaConf node of the training config
        from omegaconf import OmegaConf

        params = OmegaConf.to_container(params, resolve=True)
    if params is None:
        instance = cls()
    elif isinstance(params, cls):
        instance = copy.deepcopy(params)
    elif isinstance(params, Mapping):
        instance = from_mapping(cls, params)
    else:
        raise TypeError(f"params must be a {cls.__name__}, a mapping or None, got {type(params).__name__}")
    for key, value in (overrides or {}).items():
        set_param(instance, key, value)
    return instance


def params_union(name: str, entries: Sequence[tuple[str, type]], module: str, doc: str = "") -> type:
    """A dataclass ``name`` with one field per ``(field name, params dataclass)`` entry, defaulting to
    a fresh default instance (the ``reward.params`` section of the run config)."""
    fields = [(key, cls, dataclasses.field(default_factory=cls)) for key, cls in entries]
    union = dataclasses.make_dataclass(name, fields)
    union.__module__ = module
    union.__qualname__ = name
    union.__doc__ = doc or union.__doc__
    return union
