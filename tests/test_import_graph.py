"""The project's import structure: no cycles, and the layers only import downwards.

Layers, top to bottom: ``launch`` (entry points) -> ``rl`` (engine, evaluation) ->
``rewards`` / ``data``; ``rewards.vision`` (the frozen perception models) is a leaf
that imports nothing from the other ``rewards`` modules. The static checks read the
sources with ``ast`` (:mod:`tests.import_graph`); one test also imports every module
for real, each in a fresh project import order.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from tests.import_graph import (
    ImportEdge,
    build_graph,
    edges_of_kind,
    find_cycles,
    import_each_in_subprocess,
    upward_imports,
)


@pytest.fixture(scope="module")
def graph() -> list[ImportEdge]:
    return build_graph()


def _describe(edges: list[ImportEdge]) -> str:
    return "\n".join(f"  {e.source} -> {e.target} ({e.kind} import, line {e.line})" for e in edges)


def _cycle_report(cycles: list[list[str]], edges: list[ImportEdge]) -> str:
    lines = {(e.source, e.target): e.line for e in edges}
    return "\n".join(" -> ".join(f"{a} (line {lines[(a, b)]})" for a, b in zip(c, c[1:])) + f" -> {c[-1]}"
                     for c in cycles)


# ------------------------------------------------------------------ the project


def test_graph_sees_the_project(graph):
    """Guard against a checker that reads nothing: known module-level edges are present."""
    pairs = set(edges_of_kind(graph, "module"))
    assert ("rl.config", "rewards.vision.config") in pairs
    assert ("rl.config", "rewards") in pairs          # importing rewards.vision.config runs rewards/__init__
    assert ("rewards.registry", "rewards.vision.base") in pairs
    assert ("rl.eval.propagate", "rewards.vision.factory") in pairs


def test_no_cycle_among_module_level_imports(graph):
    """Imports that run when a module is imported form no cycle (a cycle breaks for some entry point)."""
    module_level = [e for e in graph if e.kind == "module"]
    cycles = find_cycles(edges_of_kind(module_level, "module"))
    assert not cycles, "import cycles:\n" + _cycle_report(cycles, module_level)


def test_no_cycle_between_top_level_packages(graph):
    """Counting ``TYPE_CHECKING`` imports too, the packages rl / rewards / data / launch form no cycle.

    (Inside one package a ``TYPE_CHECKING`` import back to an importer is allowed: it never runs.)
    """
    crossing = [e for e in graph if e.kind in ("module", "type_checking")
                and e.source.split(".")[0] != e.target.split(".")[0]]
    cycles = find_cycles({(e.source.split(".")[0], e.target.split(".")[0]) for e in crossing})
    layers = {package for cycle in cycles for package in cycle}
    involved = [e for e in crossing if e.source.split(".")[0] in layers and e.target.split(".")[0] in layers]
    assert not cycles, f"package cycles {cycles} through:\n" + _describe(involved)


def test_rewards_never_import_rl_or_launch(graph):
    upward = upward_imports(graph, "rewards", ("rl", "launch"))
    assert not upward, "rewards must not import rl / launch (at any level):\n" + _describe(upward)


def test_vision_is_a_leaf_package(graph):
    """``rewards.vision`` imports only its own modules (never the reward modules, rl or launch)."""
    outside = [e for e in graph if (e.source == "rewards.vision" or e.source.startswith("rewards.vision."))
               and not (e.target == "rewards.vision" or e.target.startswith("rewards.vision."))]
    assert not outside, "rewards.vision imports outside itself:\n" + _describe(outside)


def test_data_imports_rl_only_inside_functions(graph):
    """``data`` never needs ``rl`` to import (``data.build``'s CLI may load the run config when called)."""
    upward = [e for e in upward_imports(graph, "data", ("rl", "launch")) if e.kind != "function"]
    assert not upward, "data imports rl / launch at module level:\n" + _describe(upward)


def test_rl_never_imports_launch(graph):
    upward = upward_imports(graph, "rl", ("launch",))
    assert not upward, "rl must not import launch (at any level):\n" + _describe(upward)


def test_every_module_imports_from_a_fresh_start():
    """Each module, imported first, succeeds (a circular import fails here with a partially initialised module)."""
    results = import_each_in_subprocess()
    failed = {name: outcome for name, outcome in results.items() if outcome != "ok" and not outcome.startswith("skipped")}
    assert len(results) > 100 and "rewards.vision.factory" in results
    assert not failed, "modules that fail to import:\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items())


# ------------------------------------------------------------------ the checker itself


def test_find_cycles_reports_the_cycle_path():
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    assert find_cycles([("a", "b"), ("b", "c"), ("a", "c")]) == []   # a diamond is no cycle
    assert find_cycles([("x", "x")]) == [["x", "x"]]
    # two separate cycles, the shortest path through the smallest node of each
    two = [("p", "q"), ("q", "p"), ("q", "r"), ("r", "p"), ("m", "n"), ("n", "m")]
    assert find_cycles(two) == [["m", "n", "m"], ["p", "q", "p"]]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


CYCLIC_PACKAGE = {
    "cyc_top/__init__.py": "",
    "cyc_top/alpha.py": """
        from cyc_top.beta import BETA

        ALPHA = 1
    """,
    "cyc_top/beta.py": """
        from typing import TYPE_CHECKING

        from cyc_top.alpha import ALPHA

        if TYPE_CHECKING:
            from cyc_low.gamma import GAMMA
        BETA = ALPHA + 1
    """,
    "cyc_low/__init__.py": "from .gamma import GAMMA\n",
    "cyc_low/gamma.py": """
        GAMMA = 3


        def late():
            import cyc_top.alpha

            return cyc_top.alpha.ALPHA
    """,
}


def test_checker_finds_a_cycle_kinds_and_upward_imports(tmp_path):
    _write(tmp_path, CYCLIC_PACKAGE)
    edges = build_graph(tmp_path, ("cyc_top", "cyc_low"))
    kinds = {(e.source, e.target): e.kind for e in edges}
    assert kinds[("cyc_top.alpha", "cyc_top.beta")] == "module"
    assert kinds[("cyc_top.beta", "cyc_low.gamma")] == "type_checking"
    assert kinds[("cyc_top.beta", "cyc_low")] == "type_checking"       # the package's __init__ runs too
    assert kinds[("cyc_low", "cyc_low.gamma")] == "module"             # relative import resolved
    assert kinds[("cyc_low.gamma", "cyc_top.alpha")] == "function"
    assert ("cyc_top.alpha", "cyc_top") not in kinds                   # own package is not an edge
    assert find_cycles(edges_of_kind(edges, "module")) == [["cyc_top.alpha", "cyc_top.beta", "cyc_top.alpha"]]
    assert [(e.source, e.target) for e in upward_imports(edges, "cyc_low", ("cyc_top",))] == [
        ("cyc_low.gamma", "cyc_top"), ("cyc_low.gamma", "cyc_top.alpha")]


def test_runtime_import_check_catches_a_circular_import(tmp_path):
    _write(tmp_path, CYCLIC_PACKAGE)
    _write(tmp_path, {"cyc_low/needs_gpu.py": "import vllm\n"})
    results = import_each_in_subprocess(tmp_path, ("cyc_top", "cyc_low"))
    assert results["cyc_low"] == results["cyc_low.gamma"] == "ok"
    has_vllm = importlib.util.find_spec("vllm") is not None
    assert results["cyc_low.needs_gpu"] == ("ok" if has_vllm else "skipped: vllm")
    for name in ("cyc_top.alpha", "cyc_top.beta"):
        assert results[name].startswith("ImportError:") and "circular import" in results[name]
