"""Expressions of a synthetic video: every well-defined description of a scene, then a selection.

:func:`candidate_expressions` lists, by ``type_id``, the referring expressions (colour /
shape / colour-shape groups), the reasoning ones (motion direction and speed, entering and
leaving, size) that single out their target with a clear margin, and a few no-target ones
(colour-shape pairs absent from the scene). :func:`select_expressions` drops targets too
small on every frame and picks the types in ``SceneRules.type_cycle`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from data.synthetic_scene import SceneObject, SceneRules, shape_area_factor
from data.types import NO_TARGET, REASONING, REFERRING

if TYPE_CHECKING:
    from data.config import SyntheticConfig


@dataclass
class SyntheticExpression:
    text: str
    targets: tuple[int, ...]   # object indices within the video
    type_id: int


def _plural(shape: str) -> str:
    return shape + "s"


def _unique_max(values: np.ndarray, candidates: Sequence[int], margin: float, ratio: bool = False) -> Optional[int]:
    """Index in ``candidates`` with the largest value, if it leads the runner-up by ``margin``."""
    if not candidates:
        return None
    order = sorted(candidates, key=lambda k: -values[k])
    if len(order) == 1:
        return order[0]
    best, second = values[order[0]], values[order[1]]
    lead_ok = best >= margin * second if ratio else best - second >= margin
    return order[0] if lead_ok else None


def candidate_expressions(objects: Sequence[SceneObject], in_frame: np.ndarray, cfg: SyntheticConfig,
                          rules: SceneRules, rng: np.random.Generator) -> dict[int, list[SyntheticExpression]]:
    """All well-defined expressions of a scene, by type_id (targets not yet area-checked)."""
    n = len(objects)
    out: dict[int, list[SyntheticExpression]] = {REFERRING: [], REASONING: [], NO_TARGET: []}
    by_pair: dict[tuple[str, str], list[int]] = {}
    by_shape: dict[str, list[int]] = {}
    by_colour: dict[str, list[int]] = {}
    for k, obj in enumerate(objects):
        by_pair.setdefault((obj.colour, obj.shape), []).append(k)
        by_shape.setdefault(obj.shape, []).append(k)
        by_colour.setdefault(obj.colour, []).append(k)

    ref = out[REFERRING]
    for (colour, shape), ks in by_pair.items():
        text = f"the {colour} {shape}" if len(ks) == 1 else f"all the {colour} {_plural(shape)}"
        ref.append(SyntheticExpression(text, tuple(ks), REFERRING))
    for shape, ks in by_shape.items():
        if len(ks) > 1:
            ref.append(SyntheticExpression(f"all the {_plural(shape)}", tuple(ks), REFERRING))
    for colour, ks in by_colour.items():
        if len(ks) > 1:
            ref.append(SyntheticExpression(f"all the {colour} objects", tuple(ks), REFERRING))

    reason = out[REASONING]
    side = float(min(cfg.height, cfg.width))
    velocity = np.array([obj.velocity for obj in objects], dtype=np.float64).reshape(n, 2)
    if cfg.num_frames >= 2:
        directions = {"left": -velocity[:, 0], "right": velocity[:, 0], "up": -velocity[:, 1], "down": velocity[:, 1]}
        for name, component in directions.items():
            moving = [k for k in range(n) if component[k] >= rules.min_move * side]
            best = _unique_max(component, moving, rules.speed_margin * side)
            if best is not None:
                reason.append(SyntheticExpression(f"the object that moves {name} fastest", (best,), REASONING))
        speed = np.linalg.norm(velocity, axis=1)
        if n > 1:
            best = _unique_max(speed, [k for k in range(n) if speed[k] >= rules.min_move * side],
                               rules.speed_margin * side)
            if best is not None:
                reason.append(SyntheticExpression("the fastest object", (best,), REASONING))
        leaving = tuple(k for k in range(n) if in_frame[k, 0] > 0 and in_frame[k, -1] == 0)
        entering = tuple(k for k in range(n) if in_frame[k, 0] == 0 and in_frame[k, -1] > 0)
        for ks, verb in ((leaving, "leave"), (entering, "enter")):
            if len(ks) == 1:
                reason.append(SyntheticExpression(f"the shape that {verb}s the scene", ks, REASONING))
            elif len(ks) > 1:
                reason.append(SyntheticExpression(f"the shapes that {verb} the scene", ks, REASONING))
    area = np.array([shape_area_factor(o.shape) * o.radius**2 for o in objects])
    if n > 1:
        for word, values in (("largest", area), ("smallest", 1.0 / area)):
            best = _unique_max(values, list(range(n)), rules.size_margin, ratio=True)
            if best is not None:
                reason.append(SyntheticExpression(f"the {word} object", (best,), REASONING))
    for colour, ks in by_colour.items():
        if len(ks) > 1:
            best = _unique_max(area, ks, rules.size_margin, ratio=True)
            if best is not None:
                reason.append(SyntheticExpression(f"the largest {colour} object", (best,), REASONING))

    absent = [(c, s) for c in rules.colours for s in rules.shapes if (c, s) not in by_pair]
    for index in rng.permutation(len(absent))[:rules.no_target_candidates]:
        colour, shape = absent[int(index)]
        out[NO_TARGET].append(SyntheticExpression(f"the {colour} {shape}", (), NO_TARGET))
    return out


def select_expressions(candidates: dict[int, list[SyntheticExpression]], visible: np.ndarray,
                       cfg: SyntheticConfig, rules: SceneRules, rng: np.random.Generator) -> list[SyntheticExpression]:
    """Drop targets too small on every frame, then take types in ``rules.type_cycle`` order up to ``cfg.max_expressions``."""
    min_pixels = cfg.min_target_area * cfg.height * cfg.width
    pools: dict[int, list[SyntheticExpression]] = {}
    for type_id in (REFERRING, REASONING, NO_TARGET):
        pool = []
        for exp in candidates[type_id]:
            if exp.targets:
                union = visible[list(exp.targets)].any(axis=0)  # T x H x W
                if union.reshape(union.shape[0], -1).sum(axis=1).max() < min_pixels:
                    continue
            pool.append(exp)
        pools[type_id] = [pool[int(i)] for i in rng.permutation(len(pool))]
    chosen: list[SyntheticExpression] = []
    seen: set[str] = set()
    while len(chosen) < cfg.max_expressions and any(pools.values()):
        for type_id in rules.type_cycle:
            pool = pools.get(type_id)
            if pool and len(chosen) < cfg.max_expressions:
                exp = pool.pop(0)
                if exp.text not in seen:
                    seen.add(exp.text)
                    chosen.append(exp)
    return chosen


__all__ = ["SyntheticExpression", "candidate_expressions", "select_expressions"]
