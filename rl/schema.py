"""Checks of typed configuration dataclasses, driven by their annotations.

The schema dataclasses (``data.config``, ``rewards.config``, ``rl.*.config`` ...) state
their rules in the annotations, so the rules sit next to the fields they constrain and
need no import from here:

* ``typing.Literal[...]`` fields accept only the listed values (``Optional[Literal]`` also None);
* ``typing.Annotated[T, "<bound>", ...]`` fields carry bounds in a small language:
  comparisons ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=`` against a number, joined by ``,``
  (all must hold) and ``or`` (one alternative must hold), e.g. ``"> 0"``,
  ``">= 0, <= 1"``, ``"== -1 or >= 1"``. On a list the bound applies to every item; a bound
  starting with ``len`` applies to the list's length (``"len == 2"``). None is never bounded;
* a field may hold a nested dataclass or a ``list`` of them (each item is checked, its keys
  numbered: ``eval.datasets[1].name``);
* a dataclass may define ``validate(self)`` yielding ``(field, problem)`` pairs for rules
  that span fields; the field is relative to the dataclass (``""`` for the whole section).

:func:`problems` walks a config tree and returns every violation with its full dotted key
(``actor.optim.lr must be > 0, got -1.0``). OmegaConf (which merges recipes and overrides)
does not understand ``Literal``: :func:`omega_class` gives a twin dataclass with plain
types for it, and :func:`from_plain` builds the real dataclasses from the merged values.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import re
import typing
from typing import Annotated, Any, Callable, Iterator, Literal, Optional, Union, get_args, get_origin


class ConfigError(ValueError):
    """A configuration problem found at start-up (unknown key, wrong type, bad value)."""


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_COMPARISON = re.compile(r"^(len\s+)?(>=|<=|==|!=|>|<)\s*(-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?)$")


@dataclasses.dataclass(frozen=True)
class Bound:
    """A parsed bound: ``alternatives[i]`` is a list of ``(op, number)`` that must all hold."""

    text: str
    on_length: bool
    alternatives: tuple[tuple[tuple[str, float], ...], ...]

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return any(all(_OPS[op](value, number) for op, number in alt) for alt in self.alternatives)


@functools.lru_cache(maxsize=None)
def parse_bound(text: str) -> Bound:
    """``">= 0, <= 1"`` -> :class:`Bound`; a malformed text raises ``ValueError`` (a schema bug)."""
    alternatives = []
    on_length = None
    for alt in text.split(" or "):
        comparisons = []
        for part in alt.split(","):
            match = _COMPARISON.match(part.strip())
            if not match:
                raise ValueError(f"malformed bound {text!r}: {part.strip()!r} is not '<op> <number>'")
            length = bool(match.group(1))
            if on_length is not None and length != on_length:
                raise ValueError(f"malformed bound {text!r}: mixes length and value comparisons")
            on_length = length
            comparisons.append((match.group(2), float(match.group(3))))
        alternatives.append(tuple(comparisons))
    return Bound(text, bool(on_length), tuple(alternatives))


# ------------------------------------------------------------------ annotations


@dataclasses.dataclass(frozen=True)
class FieldRule:
    """What the annotation of one field says: its plain type, choices, bounds, and whether None is allowed."""

    base: Any                       # the type without Annotated / Literal / Optional (list[int], str, a dataclass)
    choices: tuple[Any, ...] = ()   # Literal values (of the field, or of each list item)
    bounds: tuple[Bound, ...] = ()
    optional: bool = False


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def field_rule(tp: Any) -> FieldRule:
    """Analyse one resolved annotation (``get_type_hints(..., include_extras=True)``)."""
    bounds: list[Bound] = []
    tp, optional = _strip_optional(tp)
    if get_origin(tp) is Annotated:
        inner, *meta = get_args(tp)
        bounds = [parse_bound(m) for m in meta if isinstance(m, str)]
        tp, inner_optional = _strip_optional(inner)
        optional = optional or inner_optional
    choices: tuple[Any, ...] = ()
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        tp = type(choices[0])
    elif get_origin(tp) is list and get_args(tp) and get_origin(get_args(tp)[0]) is Literal:
        choices = get_args(get_args(tp)[0])
        tp = list[type(choices[0])]
    return FieldRule(tp, choices, tuple(bounds), optional)


@functools.lru_cache(maxsize=None)
def rules_of(cls: type) -> dict[str, FieldRule]:
    """Field name -> :class:`FieldRule` of a dataclass."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: field_rule(hints[f.name]) for f in dataclasses.fields(cls)}


# ------------------------------------------------------------------ checks


def _dataclass_items(tp: Any) -> Optional[type]:
    """The item dataclass of a ``list[SomeDataclass]`` annotation (None for any other type)."""
    if get_origin(tp) is list and get_args(tp):
        item = _strip_optional(get_args(tp)[0])[0]
        return item if dataclasses.is_dataclass(item) else None
    return None


def _show(value: Any) -> str:
    return repr(value)


def _check_value(key: str, value: Any, rule: FieldRule) -> Iterator[str]:
    if value is None:
        return
    items = value if isinstance(value, (list, tuple)) else None
    if rule.choices:
        for i, item in enumerate(items if items is not None else [value]):
            if item not in rule.choices or type(item) is not type(rule.choices[0]):
                where = f"{key}[{i}]" if items is not None else key
                yield f"{where} must be one of {list(rule.choices)}, got {_show(item)}"
    for bound in rule.bounds:
        if bound.on_length:
            if items is not None and not bound.holds(len(items)):
                yield f"{key} must have length {bound.text[len('len'):].strip()}, got {len(items)} ({_show(value)})"
            continue
        for i, item in enumerate(items if items is not None else [value]):
            if not bound.holds(item):
                where = f"{key}[{i}]" if items is not None else key
                yield f"{where} must be {bound.text}, got {_show(item)}"


def problems(obj: Any, prefix: str = "") -> list[str]:
    """Every rule violation in the dataclass tree ``obj``, each starting with its full dotted key."""
    found: list[str] = []
    dotted = f"{prefix}." if prefix else ""
    for name, rule in rules_of(type(obj)).items():
        value = getattr(obj, name)
        key = f"{dotted}{name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found.extend(problems(value, key))
            continue
        if _dataclass_items(rule.base) and isinstance(value, list):   # a list of sections
            for i, item in enumerate(value):
                found.extend(problems(item, f"{key}[{i}]"))
        found.extend(_check_value(key, value, rule))
    validate = getattr(obj, "validate", None)
    if callable(validate):
        for name, problem in validate() or ():
            key = f"{dotted}{name}" if name else (prefix or "config")
            found.append(f"{key} {problem}")
    return found


# ------------------------------------------------------------------ OmegaConf bridge


def _plain(tp: Any) -> Any:
    """The annotation OmegaConf understands: no Annotated / Literal, dataclasses replaced by their twins."""
    tp, optional = _strip_optional(tp)
    if get_origin(tp) is Annotated:
        return _plain(Optional[get_args(tp)[0]] if optional else get_args(tp)[0])
    if get_origin(tp) is Literal:
        tp = type(get_args(tp)[0])
    elif get_origin(tp) is list and get_args(tp):
        tp = list[_plain(get_args(tp)[0])]
    elif dataclasses.is_dataclass(tp):
        tp = omega_class(tp)
    return Optional[tp] if optional else tp


def _twin_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = omega_class(type(value))
        return cls(**{f.name: _twin_value(getattr(value, f.name)) for f in dataclasses.fields(value)})
    if isinstance(value, list):
        return [_twin_value(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def omega_class(cls: type) -> type:
    """A dataclass with ``cls``'s fields, defaults and docstring whose annotations OmegaConf accepts."""
    hints = typing.get_type_hints(cls, include_extras=True)
    specs = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = _twin_value(f.default)
            spec = (dataclasses.field(default_factory=lambda d=default: d) if isinstance(default, list)
                    or dataclasses.is_dataclass(default) else dataclasses.field(default=default))
        elif f.default_factory is not dataclasses.MISSING:
            spec = dataclasses.field(default_factory=lambda make=f.default_factory: _twin_value(make()))
        else:
            spec = dataclasses.field()
        specs.append((f.name, _plain(hints[f.name]), spec))
    twin = dataclasses.make_dataclass(cls.__name__, specs)
    twin.__doc__ = cls.__doc__
    twin.__module__ = cls.__module__
    return twin


def omega_node(obj_or_cls: Any) -> Any:
    """``OmegaConf.structured`` of a config dataclass (class or instance) with Literal fields."""
    from omegaconf import OmegaConf

    if isinstance(obj_or_cls, type):
        return OmegaConf.structured(omega_class(obj_or_cls))
    return OmegaConf.structured(_twin_value(obj_or_cls))


def from_plain(cls: type, data: Any) -> Any:
    """Build dataclass ``cls`` (nested dataclasses too) from a plain mapping of field values."""
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        base = field_rule(hints[f.name]).base
        if dataclasses.is_dataclass(base) and isinstance(value, dict):
            value = from_plain(base, value)
        elif _dataclass_items(base) and isinstance(value, list):
            value = [from_plain(_dataclass_items(base), v) if isinstance(v, dict) else v for v in value]
        kwargs[f.name] = value
    return cls(**kwargs)


__all__ = ["ConfigError", "Bound", "parse_bound", "FieldRule", "field_rule", "rules_of", "problems",
           "omega_class", "omega_node", "from_plain"]
