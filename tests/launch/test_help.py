"""Every command-line entry point answers ``--help`` / ``-h`` with exit 0 and no side effects.

Before: ``launch.train --help`` was "unknown argument" (exit 2), ``launch.sweep --help`` exit 2,
``launch.sft --help`` started the SFT job (and wrote a synthetic data set), argparse CLIs printed
only the first docstring paragraph (``launch.submit --help`` did not list its sub-commands).

Each case runs ``python <wrapper> MODULE ARGS`` in a subprocess whose working folder, HOME and
TMPDIR / RAY_TMPDIR are empty temp folders; the wrapper runs the module as ``python -m`` would
and then reports which heavy packages were imported. Asserted: exit 0, the output names the
sub-commands / flags / config groups expected of that CLI, no file appeared anywhere in those
folders (no Ray session, no data set, no run dir), and torch / ray / transformers / vllm / sam2
were never imported (help returns before the heavy work).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
HEAVY = ("torch", "ray", "transformers", "vllm", "sam2", "wandb", "matplotlib")

#: Runs MODULE as ``python -m MODULE ARGS`` would (a ``*.py`` path as ``python PATH ARGS``), then
#: prints which of the watched packages were imported.
WRAPPER = r"""
import json, runpy, sys
module, args = sys.argv[1], sys.argv[2:]
sys.argv = [module, *args]
code = 0
try:
    if module.endswith(".py"):
        runpy.run_path(module, run_name="__main__")
    else:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
sys.stdout.flush()
heavy = [m for m in WATCHED if m in sys.modules]
sys.stderr.write("\nHEAVY-IMPORTS " + json.dumps(heavy) + "\n")
sys.exit(code)
"""


def wrapper_source(watched: tuple[str, ...] = HEAVY) -> str:
    return WRAPPER.replace("WATCHED", repr(watched))


def _names(folder: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / folder).glob("*.yaml"))


def _groups(*folders: str) -> list[str]:
    """``configs/<folder>`` and every file name in it, for each folder that exists."""
    found = []
    for folder in folders:
        if (CONFIGS / folder).is_dir():
            found += [f"configs/{folder}", *_names(folder)]
    return found


LAUNCHER_DOCS = ["configs/default.yaml", "docs/config.md", "python -m rl.config_doc"]


@dataclass(frozen=True)
class Case:
    module: str
    args: tuple[str, ...]
    expected: tuple[str, ...]   # substrings of stdout

    @property
    def id(self) -> str:
        name = Path(self.module).relative_to(REPO).as_posix() if self.module.endswith(".py") else self.module
        return " ".join((name,) + self.args)


CASES = [
    Case("launch.train", ("--help",), ("usage: python -m launch.train", "--dry-run", "--allow-missing",
                                       "placement plan", *_groups("recipes", "cluster", "profiles"), *LAUNCHER_DOCS)),
    Case("launch.train", ("recipe=videoseg_r1", "-h"), ("usage: python -m launch.train", "--dry-run")),
    Case("launch.sft", ("--help",), ("usage: python -m launch.sft", "--force", "--dry-run", "--allow-missing",
                                     *_groups("recipes", "cluster", "profiles"), *LAUNCHER_DOCS)),
    Case("launch.sweep", ("--help",), ("usage: python -m launch.sweep", "--dry-run", "--allow-missing",
                                       "sweep.<field>", *_groups("sweeps", "recipes", "cluster"), *LAUNCHER_DOCS)),
    Case("launch.sweep", ("sweep=reward_grid", "-h"), ("usage: python -m launch.sweep",)),
    Case("launch.submit", ("--help",), ("status JOB_ID", "stop   JOB_ID", "logs   JOB_ID", "list", "--address",
                                        "--secrets-file", "--module", "NOT checked here",
                                        *_groups("recipes", "cluster", "sweeps"), *LAUNCHER_DOCS)),
    Case("launch.evaluate", ("--help",), ("{score,run}", "python -m launch.evaluate score",
                                          "python -m launch.evaluate run", "per_expression.csv")),
    Case("launch.evaluate", ("run", "--help"), ("usage: python -m launch.evaluate run", "dataset.root", "checkpoint",
                                                "eval.checkpoint", *_groups("recipes"), *LAUNCHER_DOCS)),
    Case("launch.evaluate", ("score", "-h"), ("--dataset-root", "--pred", "--format", "--threshold")),
    Case("launch.sync", ("--help",), ("usage: python -m launch.sync", "--upload", "wandb sync", "Exit status")),
    Case("launch.with_secrets", ("--help",), ("usage: python -m launch.with_secrets FILE MODULE", "mode 600")),
    Case("launch.export", ("--help",), ("RUN_DIR", "--step", "--out")),
    Case("launch.annotate", ("--help",), ("usage: python -m launch.annotate", "difficulty", "cot", "generate",
                                          "--dry-run", "annotate.num_actors", *_groups("recipes", "cluster"),
                                          *LAUNCHER_DOCS)),
    Case("rewards.score", ("--help",), ("usage: python -m rewards.score", "--reward", "--input", "--param",
                                        "visionreasoner", "exit status")),
    Case("rl.report", ("--help",), ("usage: python -m rl.report", "run_dir", "report.md", "curves.png")),
    Case("rl.config_doc", ("--help",), ("usage: python -m rl.config_doc", "configs/default.yaml")),
    Case("data.build", ("--help",), ("usage: python -m data.build", "data.root", "data.format", "data.task", "out=",
                                     *_groups("recipes"), "configs/default.yaml")),
    Case("data.synthetic", ("--help",), ("OUT_DIR", "layout", "num_videos")),
    Case("data.convert", ("--help",), ("davis17",)),
    Case(str(REPO / "launch/slurm/ray_node.py"), ("--help",), ("{head,worker,wait}", "--cluster", "train.sbatch",
                                                               "ray start --block")),
]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    heavy: list[str]
    created: list[str]


def _run(case: Case, wrapper: Path, base: Path, pythonpath: Path = REPO) -> Outcome:
    """Run ``case`` with private, empty cwd / HOME / TMPDIR; report what it printed, imported and created."""
    folder = Path(tempfile.mkdtemp(prefix="help-", dir=base))
    dirs = {name: folder / name for name in ("cwd", "home", "tmp")}
    for path in dirs.values():
        path.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "WANDB_", "PYTHON"))}
    env.update(PYTHONPATH=str(pythonpath), PYTHONDONTWRITEBYTECODE="1", HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]),
               RAY_TMPDIR=str(dirs["tmp"]), MPLCONFIGDIR=str(dirs["home"] / "mpl"), WANDB_MODE="offline")
    result = subprocess.run([sys.executable, str(wrapper), case.module, *case.args], cwd=dirs["cwd"], env=env,
                            capture_output=True, text=True, timeout=120)
    stderr, _, tail = result.stderr.rpartition("HEAVY-IMPORTS ")
    heavy = json.loads(tail) if tail.strip() else ["<wrapper did not finish>"]
    created = sorted(str(p.relative_to(folder)) for d in dirs.values() for p in d.rglob("*"))
    return Outcome(result.returncode, result.stdout, stderr if tail else result.stderr, heavy, created)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Every case, two at a time (each one is a fresh interpreter: ~0.5-1.5 s of imports)."""
    base = tmp_path_factory.mktemp("help")
    wrapper = base / "run_module.py"
    wrapper.write_text(wrapper_source())
    runnable = [c for c in CASES if c.module.endswith(".py") or importlib.util.find_spec(c.module) is not None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((c.id for c in runnable), pool.map(lambda c: _run(c, wrapper, base), runnable)))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_help_exits_0_prints_the_usage_and_has_no_side_effects(case, outcomes):
    if case.id not in outcomes:
        pytest.skip(f"{case.module} does not exist in this checkout")
    got = outcomes[case.id]
    assert got.code == 0, f"exit {got.code}\nstdout:\n{got.stdout[-2000:]}\nstderr:\n{got.stderr[-3000:]}"
    missing = [text for text in case.expected if text not in got.stdout]
    assert not missing, f"--help of {case.id} does not mention {missing}:\n{got.stdout}"
    assert not got.created, f"--help of {case.id} created {got.created}"
    assert not got.heavy, f"--help of {case.id} imported {got.heavy} (help must return before the heavy work)"


def test_every_entry_point_is_covered():
    """A new ``python -m`` entry point (a module with a ``__main__`` block) gets a case here."""
    covered = {c.id.split()[0] for c in CASES}
    entry_points = set()
    for package in ("launch", "rl", "rewards", "data"):
        for path in (REPO / package).rglob("*.py"):
            if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
                in_package = (path.parent / "__init__.py").is_file()
                rel = path.relative_to(REPO)
                entry_points.add(".".join(rel.with_suffix("").parts) if in_package else rel.as_posix())
    assert entry_points - covered == set(), "entry points without a --help case"
    assert {"launch.train", "launch.sft", "launch.export", "data.convert"} <= entry_points


def test_the_checker_catches_a_cli_that_acts_on_help(tmp_path):
    """The side-effect and heavy-import checks can fail: a module that writes a file and imports numpy."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "noisy.py").write_text("import json\nopen('made.txt', 'w').write('x')\nprint('usage: noisy')\n")
    wrapper = tmp_path / "run_module.py"
    wrapper.write_text(wrapper_source(("json",)))
    got = _run(Case("pkg.noisy", ("--help",), ("usage: noisy",)), wrapper, tmp_path, pythonpath=tmp_path)
    assert got.code == 0 and "usage: noisy" in got.stdout
    assert got.created == ["cwd/made.txt"] and got.heavy == ["json"]
