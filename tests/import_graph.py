"""Static import graph of the project's packages (read with ``ast``, nothing is imported).

Every ``import`` / ``from ... import`` of a project module becomes an :class:`ImportEdge`
of one kind:

* ``module``: runs when the importing module is imported (top level, ``if`` / ``try``
  blocks, class bodies);
* ``function``: inside a function or lambda body, runs only when that function is called;
* ``type_checking``: under ``if TYPE_CHECKING:``, never runs.

Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``; those package
imports are added as edges of the same kind, except for packages that contain the
importing module (they are already being imported when it runs).

:func:`import_each_in_subprocess` imports every module for real, each as the first
project module of the interpreter (``python -m tests.import_graph ROOT PACKAGE...``).
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("rl", "rewards", "data", "launch")
KINDS = ("module", "function", "type_checking")
#: Third-party packages only some installs have (GPU set); a module needing one is skipped.
OPTIONAL_DEPENDENCIES = ("vllm", "flash_attn")
_RESULT_MARK = "IMPORT-RESULTS "


@dataclass(frozen=True)
class ImportEdge:
    """``source`` imports project module ``target`` at ``line`` of the source file; ``kind`` is one of :data:`KINDS`."""

    source: str
    target: str
    kind: str
    line: int


def project_modules(root: Path = REPO_ROOT, packages: Sequence[str] = PROJECT_PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file for every ``.py`` under ``root/<package>`` (``__init__`` names the package)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking_test(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.stmt, str]]:
    """Yield every import statement under ``node`` with the kind of the scope it runs in."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, kind
            continue
        child_kind = kind
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            child_kind = "function" if kind == "module" else kind
        elif isinstance(child, ast.If) and _is_type_checking_test(child.test) and kind == "module":
            for stmt, sub_kind in _walk(ast.Module(body=child.body, type_ignores=[]), "type_checking"):
                yield stmt, sub_kind
            for stmt, sub_kind in _walk(ast.Module(body=child.orelse, type_ignores=[]), kind):
                yield stmt, sub_kind
            continue
        yield from _walk(child, child_kind)


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _containing(name: str, known: Mapping[str, Path]) -> str | None:
    """The longest project module that ``name`` is or lies inside (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def imports_of(module: str, path: Path, known: Mapping[str, Path]) -> list[ImportEdge]:
    """The project imports of one module (targets and their packages, see the module docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    own_packages = set(_ancestors(module)) | ({module} if is_package else set())
    edges: list[ImportEdge] = []
    for stmt, kind in _walk(tree, "module"):
        targets: list[str] = []
        if isinstance(stmt, ast.Import):
            targets = [alias.name for alias in stmt.names]
        else:
            base = stmt.module or ""
            if stmt.level:
                base = _resolve_relative(module, is_package, stmt.level, stmt.module)
            for alias in stmt.names:  # ``from pkg import sub`` imports the submodule pkg.sub
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        names: dict[str, None] = {}  # ordered set: ``from a import x, y`` is one edge per module
        for target in targets:
            resolved = _containing(target, known)
            if resolved is not None:
                names.update(dict.fromkeys([*_ancestors(resolved), resolved]))
        edges.extend(ImportEdge(module, name, kind, stmt.lineno) for name in names
                     if name != module and name not in own_packages)
    return edges


def build_graph(root: Path = REPO_ROOT, packages: Sequence[str] = PROJECT_PACKAGES) -> list[ImportEdge]:
    """All project import edges of the modules under ``root/<packages>``."""
    known = project_modules(root, packages)
    return [edge for module, path in known.items() for edge in imports_of(module, path, known)]


def find_cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """One cycle path ``[a, b, ..., a]`` per strongly connected component that has a cycle.

    ``edges``: directed ``(source, target)`` pairs. Iterative Tarjan; the returned path is
    a shortest cycle through the component's smallest node (breadth-first search).
    """
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
        graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    cycles = []
    for component in components:
        members = set(component)
        first = min(component)
        if len(component) == 1 and first not in graph[first]:
            continue
        cycles.append(_shortest_cycle(graph, members, first))
    return sorted(cycles)


def _shortest_cycle(graph: Mapping[str, set[str]], members: set[str], start: str) -> list[str]:
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parent:
                    parent[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")  # unreachable for a strongly connected component


def edges_of_kind(edges: Iterable[ImportEdge], *kinds: str) -> list[tuple[str, str]]:
    """``(source, target)`` pairs of the edges whose kind is one of ``kinds``."""
    return [(edge.source, edge.target) for edge in edges if edge.kind in kinds]


def upward_imports(edges: Iterable[ImportEdge], lower: str, upper: Sequence[str]) -> list[ImportEdge]:
    """Edges from package ``lower`` (or its modules) into any package of ``upper``, at any kind."""
    def inside(name: str, package: str) -> bool:
        return name == package or name.startswith(package + ".")

    return [edge for edge in edges if inside(edge.source, lower) and any(inside(edge.target, p) for p in upper)]


def import_each(modules: Sequence[str], packages: Sequence[str], optional: Sequence[str]) -> dict[str, str]:
    """Import each module after removing every module of ``packages`` from ``sys.modules``.

    So each import starts the project's import order afresh from that module (third-party
    modules stay loaded, which keeps it fast). Returns module -> ``"ok"``, ``"skipped: <dep>"``
    (a missing ``optional`` dependency) or ``"<ExceptionType>: <message>"``.
    """
    results: dict[str, str] = {}
    for name in modules:
        for loaded in [key for key in sys.modules if key.split(".")[0] in packages]:
            del sys.modules[loaded]
        try:
            importlib.import_module(name)
            results[name] = "ok"
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            results[name] = f"skipped: {missing}" if missing in optional else f"ModuleNotFoundError: {exc}"
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the caller
            results[name] = f"{type(exc).__name__}: {exc}"
    return results


def import_each_in_subprocess(root: Path = REPO_ROOT, packages: Sequence[str] = PROJECT_PACKAGES,
                              timeout: float = 600.0) -> dict[str, str]:
    """:func:`import_each` over every module under ``root/<packages>``, in a new interpreter."""
    proc = subprocess.run([sys.executable, "-m", "tests.import_graph", str(root), *packages], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"import check exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(_RESULT_MARK):])


if __name__ == "__main__":
    _root, _packages = Path(sys.argv[1]), tuple(sys.argv[2:])
    sys.path.insert(0, str(_root))
    _results = import_each(sorted(project_modules(_root, _packages)), _packages, OPTIONAL_DEPENDENCIES)
    print(_RESULT_MARK + json.dumps(_results), flush=True)
