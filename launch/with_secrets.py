"""Run a launcher with secrets read from a file: ``python -m launch.with_secrets FILE MODULE [ARGS...]``.

Why: Ray writes a job's runtime environment, ``env_vars`` included, to its logs in
plain text (``session_*/logs/runtime_env_agent.log`` and others on the head), so
``launch.submit`` never puts secrets (``WANDB_API_KEY``, tokens, passwords) there.
With ``--secrets-file PATH`` it submits ``python -m launch.with_secrets PATH
launch.train ...`` instead: only the path travels through Ray; this module, running
as the job's driver on the head node, reads the file, sets the variables in its own
process environment and runs the launcher (``runpy``, as ``python -m MODULE ARGS``
would). The driver is where W&B logs from, so that is where ``WANDB_API_KEY`` is
needed; Ray worker processes do not see these variables (export them in the nodes'
environment if a worker needs one).

FILE: ``KEY=VALUE`` lines (``export KEY=VALUE`` and one pair of surrounding quotes
accepted; blank lines and ``#`` comments ignored), on storage the head node can
read (e.g. the shared filesystem), readable only by you (mode 600: a file readable
by others is refused). Values override the environment. Errors name the file and
the line, never a value; exit status 2.
"""

from __future__ import annotations

import os
import re
import runpy
import stat
import sys
from pathlib import Path
from typing import Mapping, MutableMapping, Optional, Sequence

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

USAGE = "usage: python -m launch.with_secrets FILE MODULE [ARGS...]   (e.g. secrets.env launch.train recipe=NAME)"

__all__ = ["SecretsFileError", "read_secrets_file", "apply_secrets", "main"]


class SecretsFileError(ValueError):
    """The secrets file is missing, readable by others, or malformed (the message never holds a value)."""


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_secrets_file(path: str | Path, check_mode: bool = True) -> dict[str, str]:
    """``{KEY: VALUE}`` of a secrets file (see the module docstring)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SecretsFileError(f"secrets file {path} does not exist (it must be readable on the head node)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if check_mode and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsFileError(f"secrets file {path} is accessible by other users (mode {mode:o}); chmod 600 it")
    secrets: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise SecretsFileError(f"{path}:{number}: expected KEY=VALUE")
        secrets[key] = _unquote(value.strip())
    return secrets


def apply_secrets(secrets: Mapping[str, str], env: Optional[MutableMapping[str, str]] = None) -> list[str]:
    """Set every secret in ``env`` (default ``os.environ``); returns the names set."""
    env = os.environ if env is None else env
    for key, value in secrets.items():
        env[key] = value
    return sorted(secrets)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv[:2]):   # FILE MODULE --help asks MODULE for its help
        print(f"{USAGE}\n\n{__doc__.strip()}")           # standard library only: runs in a bare job working_dir
        return 0
    if len(argv) < 2:
        print(f"{USAGE}\n(python -m launch.with_secrets --help explains it)", file=sys.stderr)
        return 2
    path, module, args = argv[0], argv[1], argv[2:]
    try:
        names = apply_secrets(read_secrets_file(path))
    except (SecretsFileError, OSError, UnicodeDecodeError) as exc:
        print(f"launch.with_secrets: {exc}", file=sys.stderr)
        return 2
    print(f"launch.with_secrets: set {', '.join(names) or 'nothing'} from {path}", file=sys.stderr, flush=True)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return int(code or 0)
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
