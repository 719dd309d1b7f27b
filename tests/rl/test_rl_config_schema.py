"""rl.schema: the bound language, the recursive check, the OmegaConf twin classes, and the schema itself."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Iterator, Literal, Optional, get_origin

import pytest

from rl.config import CONFIG_DIR, Config, load_config, to_yaml
from rl.schema import field_rule, from_plain, omega_class, omega_node, parse_bound, problems, rules_of


@pytest.mark.parametrize("text, inside, outside", [
    ("> 0", [1e-9, 3, 7.5], [0, -1, math.nan]),
    (">= 0, <= 1", [0, 0.5, 1], [-1e-9, 1.0001, math.inf]),
    ("== -1 or >= 1", [-1, 1, 40], [0, -2, 0.5]),
    ("!= 0", [-3, 2], [0, 0.0]),
    ("< 1e-3", [0, -5], [1e-3, 1]),
])
def test_bounds_hold_exactly_inside(text, inside, outside):
    bound = parse_bound(text)
    assert all(bound.holds(v) for v in inside) and not any(bound.holds(v) for v in outside)
    assert not bound.holds(True) and not bound.holds("1")          # a bool or a string is no number


@pytest.mark.parametrize("text", ["> x", "=> 1", "0 <", "len == 2, > 0", "", ">= 1 and <= 2"])
def test_malformed_bounds_are_schema_errors(text):
    with pytest.raises(ValueError, match="malformed bound"):
        parse_bound(text)


@dataclass
class _Inner:
    mode: Literal["a", "b"] = "a"
    sizes: Annotated[list[int], "len == 2", "> 0"] = field(default_factory=lambda: [1, 2])

    def validate(self) -> Iterator[tuple[str, str]]:
        if self.mode == "b" and self.sizes[0] > self.sizes[1]:
            yield "sizes", "must be ascending in mode b"


@dataclass
class _Outer:
    rate: Annotated[float, "> 0"] = 1.0
    cap: Optional[Annotated[int, ">= 1"]] = None
    tags: list[Literal["x", "y"]] = field(default_factory=list)
    inner: _Inner = field(default_factory=_Inner)


def test_problems_name_full_keys_of_nested_fields_list_items_and_validate():
    assert problems(_Outer()) == []
    bad = _Outer(rate=0.0, cap=0, tags=["x", "z"], inner=_Inner(mode="c", sizes=[3, 0, 1]))
    assert problems(bad, "top") == [
        "top.rate must be > 0, got 0.0",
        "top.cap must be >= 1, got 0",
        "top.tags[1] must be one of ['x', 'y'], got 'z'",
        "top.inner.mode must be one of ['a', 'b'], got 'c'",
        "top.inner.sizes must have length == 2, got 3 ([3, 0, 1])",
        "top.inner.sizes[1] must be > 0, got 0",
    ]
    assert problems(_Outer(inner=_Inner(mode="b", sizes=[5, 2]))) == ["inner.sizes must be ascending in mode b"]


def test_twin_class_round_trips_through_omegaconf():
    from omegaconf import OmegaConf

    node = OmegaConf.structured(omega_class(_Outer))
    merged = OmegaConf.merge(node, OmegaConf.from_dotlist(["inner.mode=b", "cap=3", "tags=[y]"]))
    obj = from_plain(_Outer, OmegaConf.to_container(merged))
    assert obj == _Outer(cap=3, tags=["y"], inner=_Inner(mode="b")) and type(obj.inner) is _Inner
    assert OmegaConf.to_container(omega_node(obj)) == dataclasses.asdict(obj)


def _classes(cls: type) -> Iterator[type]:
    yield cls
    for rule in rules_of(cls).values():
        if dataclasses.is_dataclass(rule.base):
            yield from _classes(rule.base)


def test_every_schema_field_has_a_readable_rule_and_the_defaults_keep_them():
    classes = list(_classes(Config))
    assert len(classes) > 20
    for cls in classes:
        rules_of(cls)                                               # every bound parses
    assert problems(Config()) == []


# Numeric fields that take any value on purpose (each with the reason); every other one has a bound.
UNBOUNDED = {
    "trainer.keep_last_checkpoints",          # <= 0 keeps all
    "actor.entropy_coeff",                    # a negative bonus is a penalty
    "actor.optim.grad_clip", "sft.grad_clip",  # <= 0: no clipping
    "algorithm.filter_groups.low", "algorithm.filter_groups.high",  # any score range
    "eval.xmem_size",                         # <= 0 keeps the frame size
}


def _numeric_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, object]]:
    for name, rule in rules_of(cls).items():
        key = f"{prefix}{name}"
        base = rule.base
        if dataclasses.is_dataclass(base):
            if key != "reward.params":                             # the rewards' own parameters
                yield from _numeric_fields(base, key + ".")
        elif base in (int, float) or (get_origin(base) is list and base.__args__[0] in (int, float)):
            yield key, rule


def test_every_numeric_field_is_bounded_or_listed_as_unbounded():
    unbounded = {key for key, rule in _numeric_fields(Config) if not rule.bounds and not rule.choices}
    assert unbounded == UNBOUNDED


def test_choice_fields_are_literals():
    """A field documented as a choice must be a Literal (the old hand-written lists are gone)."""
    for key in ("data.format", "data.task", "data.synthetic.background", "model.dtype", "rollout.backend",
                "actor.loss_agg_mode", "actor.fsdp.param_dtype", "trainer.device", "tracking.wandb_mode",
                "cluster.actor.strategy", "cluster.reference.colocate_with", "eval.sampler", "eval.propagator",
                "eval.backend", "eval.dataset_format", "eval.segmenter.backend", "sft.lr_scheduler"):
        cls, name = Config, key
        while "." in name:
            head, name = name.split(".", 1)
            cls = rules_of(cls)[head].base
        assert rules_of(cls)[name].choices, key
    assert field_rule(Optional[Literal["p", "q"]]).optional


@pytest.mark.parametrize("recipe", ["quickstart", "rcot_ktg", "videoseg_r1"])
def test_resolved_yaml_loads_back_to_the_same_config(recipe, tmp_path):
    cfg = load_config([f"recipe={recipe}"])
    saved = tmp_path / f"{recipe}.yaml"
    saved.write_text(to_yaml(cfg))
    again = load_config([f"recipe={saved}"])
    assert dataclasses.replace(again, recipe=recipe) == cfg
    assert (CONFIG_DIR / "recipes" / f"{recipe}.yaml").is_file()
