"""The README's runnable code blocks run and succeed (and those of docs/first_run.md).

A block is runnable when the line right before its opening fence is an HTML comment::

    <!-- runnable -->           seconds on a CPU: part of the fast suite
    <!-- runnable: slow -->     CPU-sized but longer (at most one in the docs; run, and its outputs
                                checked, by tests/e2e/test_e2e_recipes_cpu.py in the slow suite)

Each block runs as one bash script with ``set -euo pipefail`` (every command must exit 0) in a
fresh temporary folder: the working directory, ``HOME``, ``TMPDIR`` and ``RAY_TMPDIR`` are there,
``PYTHONPATH`` is the repository root, the repository's ``.venv/bin`` comes first on ``PATH`` (so
``python`` is the project's interpreter) and ``WANDB_MODE=offline``. Blocks that need real data
sets, checkpoints or GPUs are simply not marked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Markdown files whose marked blocks are run.
DOC_FILES = ("README.md", "docs/first_run.md")
MARKER = re.compile(r"^<!--\s*runnable(?::\s*([A-Za-z]+))?\s*-->$")
FENCE = re.compile(r"^(`{3,})\s*([A-Za-z0-9_+-]*)\s*$")
SHELL_LANGUAGES = ("bash", "sh", "shell", "")
#: Seconds a block may take before it is killed (generous: the CI machines are shared).
TIMEOUT = {"fast": 300, "slow": 600}


class DocBlockError(ValueError):
    """A runnable marker that does not mark a usable code block."""


@dataclass(frozen=True)
class Block:
    source: str  # file, relative to the repository
    line: int  # 1-based line of the opening fence
    kind: str  # "fast" | "slow"
    code: str

    @property
    def name(self) -> str:
        return f"{self.source}:{self.line}"

    def commands(self) -> list[str]:
        """The lines that do something (not blank, not a comment)."""
        return [ln for ln in self.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def extract_blocks(text: str, source: str) -> list[Block]:
    """The code blocks of a markdown ``text`` marked runnable, in order.

    Raises :class:`DocBlockError` (naming ``source:line``) for a marker that is not followed by a
    shell code fence, an unknown marker kind, an unclosed fence or a marked block without a command.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if not marker:
            i += 1
            continue
        kind = (marker.group(1) or "fast").lower()
        if kind not in TIMEOUT:
            raise DocBlockError(f"{source}:{i + 1}: unknown runnable kind {marker.group(1)!r} (fast or slow)")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise DocBlockError(f"{source}:{i + 1}: a runnable marker must be followed by a code fence")
        if fence.group(2).lower() not in SHELL_LANGUAGES:
            raise DocBlockError(f"{source}:{i + 2}: a runnable block must be a shell block, not {fence.group(2)!r}")
        end = i + 2
        while end < len(lines) and lines[end].strip() != fence.group(1):
            end += 1
        if end == len(lines):
            raise DocBlockError(f"{source}:{i + 2}: the code fence is never closed")
        block = Block(source, i + 2, kind, "\n".join(lines[i + 2:end]))
        if not block.commands():
            raise DocBlockError(f"{block.name}: a runnable block holds no command")
        blocks.append(block)
        i = end + 1
    return blocks


def doc_blocks() -> list[Block]:
    blocks: list[Block] = []
    for rel in DOC_FILES:
        blocks += extract_blocks((REPO / rel).read_text(encoding="utf-8"), rel)
    return blocks


def _venv_bin() -> Path:
    venv = REPO / ".venv" / "bin"
    return venv if (venv / "python").exists() else Path(sys.executable).parent


def run_block(code: str, workdir: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run ``code`` as a bash script in ``workdir`` with the doc-test environment."""
    home = workdir / "home"
    tmp = workdir / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    # Ray's socket paths must stay short (AF_UNIX limit): its temp dir lives directly in /tmp.
    ray_tmp = tempfile.mkdtemp(prefix="rdoc", dir="/tmp")
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.update({
        "HOME": str(home), "TMPDIR": str(tmp), "RAY_TMPDIR": ray_tmp, "WANDB_MODE": "offline",
        "PYTHONPATH": str(REPO), "PATH": f"{_venv_bin()}{os.pathsep}{env.get('PATH', '')}",
        "MPLBACKEND": "Agg",
    })
    script = "set -euo pipefail\n" + code + "\n"
    try:
        return subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- the extractor

SAMPLE = """# Title

```bash
echo not marked
```

<!-- runnable -->
```bash
# a comment
echo one
echo two
```

text
<!-- runnable: slow -->
```
echo slow
```
"""


def test_extract_blocks_takes_marked_fences_only():
    blocks = extract_blocks(SAMPLE, "sample.md")
    assert [(b.line, b.kind) for b in blocks] == [(8, "fast"), (16, "slow")]
    assert blocks[0].code == "# a comment\necho one\necho two"
    assert blocks[0].commands() == ["echo one", "echo two"]
    assert blocks[1].commands() == ["echo slow"]


@pytest.mark.parametrize("text, message", [
    ("<!-- runnable -->\ntext\n", "followed by a code fence"),
    ("<!-- runnable -->\n", "followed by a code fence"),
    ("<!-- runnable: fastest -->\n```bash\necho x\n```\n", "unknown runnable kind"),
    ("<!-- runnable -->\n```python\nprint(1)\n```\n", "must be a shell block"),
    ("<!-- runnable -->\n```bash\necho x\n", "never closed"),
    ("<!-- runnable -->\n```bash\n# only a comment\n\n```\n", "holds no command"),
])
def test_a_bad_marker_is_an_error(text, message):
    with pytest.raises(DocBlockError, match=message):
        extract_blocks(text, "bad.md")


def test_runner_fails_when_any_command_fails(tmp_path):
    assert run_block("true\nfalse\ntrue", tmp_path, 30).returncode != 0
    assert run_block("false | cat", tmp_path, 30).returncode != 0  # pipefail
    ok = run_block('echo "$WANDB_MODE"\necho "$HOME"\npwd\npython -c "import sys, rl; print(sys.prefix)"', tmp_path, 60)
    assert ok.returncode == 0, ok.stderr
    mode, home, cwd, prefix = ok.stdout.split("\n")[:4]
    assert (mode, home) == ("offline", str(tmp_path / "home"))
    assert Path(cwd).resolve() == tmp_path.resolve()
    assert Path(prefix).resolve() == _venv_bin().parent.resolve()  # the project's interpreter, repo importable


# ----------------------------------------------------------------------------- the docs


def test_docs_mark_their_runnable_blocks():
    blocks = doc_blocks()
    readme = [b for b in blocks if b.source == "README.md"]
    assert len([b for b in readme if b.kind == "fast"]) >= 3, "README.md lost its runnable blocks"
    assert len([b for b in blocks if b.kind == "slow"]) <= 1, "at most one slow runnable block (test budget)"
    assert any(b.source == "docs/first_run.md" for b in blocks), "docs/first_run.md lost its CPU rehearsal block"


def _params() -> list:
    try:
        blocks = doc_blocks()
    except (OSError, DocBlockError):  # reported by test_docs_mark_their_runnable_blocks
        return []
    # The slow block (the CPU rehearsal of docs/first_run.md) is run by tests/e2e/test_e2e_recipes_cpu.py,
    # which also checks what it wrote.
    return [pytest.param(b, id=b.name) for b in blocks if b.kind == "fast"]


@pytest.mark.parametrize("block", _params())
def test_runnable_block(block: Block, tmp_path):
    start = time.monotonic()
    try:
        result = run_block(block.code, tmp_path, TIMEOUT[block.kind])
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.name}: did not finish in {exc.timeout:.0f} s\n{block.code}")
    took = time.monotonic() - start
    assert result.returncode == 0, (
        f"{block.name} failed (exit {result.returncode}, {took:.1f} s):\n{block.code}\n"
        f"--- stdout (end) ---\n{result.stdout[-3000:]}\n--- stderr (end) ---\n{result.stderr[-3000:]}")
