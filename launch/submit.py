"""Submit runs to a Ray cluster through the Ray Jobs API, and manage them.

::

    python -m launch.submit --address http://HEAD:8265 recipe=NAME [cluster=NAME] key=value ...
    python -m launch.submit status JOB_ID [--address ...]
    python -m launch.submit stop   JOB_ID [--address ...]
    python -m launch.submit logs   JOB_ID [--address ...] [--follow]
    python -m launch.submit list          [--address ...]

Submitting uploads the repository as the job's ``working_dir`` (without
``runs/``, ``.venv/``, ``.git/``, caches and W&B folders), forwards ``WANDB_*``
variables (mode, entity, project, ...) and ``--env KEY=VALUE`` to the job,
runs ``python -m launch.train <items> cluster.address=auto`` (``--module`` picks
another launcher, e.g. ``launch.sweep``) and follows its logs until it ends
(``--no-wait`` returns the job id at once). The exit status is 0 when the job
succeeded.

The job's config is resolved and validated here first (an unknown key or a bad value is
exit status 2 and nothing is submitted), but the files it names (``model.path``,
``data.root``, checkpoints) are NOT checked here: they are paths on the cluster. The job
checks them when it starts there (the launchers' pre-flight checks) and fails with exit
status 2 naming each missing one; ``python -m launch.train ... --dry-run`` on a cluster
node checks them beforehand.

Secrets never go into the job's runtime env, because Ray writes runtime envs to
its logs in plain text: variables whose names look secret (``*API_KEY*``,
``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*CREDENTIAL*``; e.g.
``WANDB_API_KEY``) are not forwarded, and ``--env`` refuses them. The job gets
them either from the Ray nodes' own environment (what the node processes were
started with) or from ``--secrets-file PATH``: a ``KEY=VALUE`` file (mode 600)
the head node can read; only its path is sent, and the job's driver reads it
(:mod:`launch.with_secrets`).

Ray 2.60 token authentication: the dashboard rejects requests without
``Authorization: Bearer <token>`` when the cluster runs with
``RAY_AUTH_MODE=token``. Ray's own client adds the header only if
``RAY_AUTH_MODE=token`` is set in the client's environment, then loads the
token from ``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, or
``~/.ray/auth_token`` (in that order). This launcher looks the token up the
same way (``--token-file`` first), sends the header itself and sets
``RAY_AUTH_MODE=token``; ``RAY_AUTH_MODE=disabled`` sends no token. On the head
node ``ray get-auth-token`` prints the cluster's token.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# Never uploaded with the working_dir (gitignore syntax, relative to it).
EXCLUDES = ["runs/", ".venv/", "venv/", ".git/", "**/__pycache__/", "*.pyc", ".pytest_cache/", ".hypothesis/",
            "*.egg-info/", "wandb/", "outputs/", ".mypy_cache/", ".ruff_cache/"]
# Client environment variables forwarded to the job (prefixes), secrets excepted.
FORWARD_PREFIXES = ("WANDB_",)
# Variable names treated as secrets: never put into a runtime env (Ray logs those in plain text).
SECRET_NAME = re.compile(r"API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MODULES = ("launch.train", "launch.sweep", "launch.sft", "launch.evaluate")
COMMANDS = ("status", "stop", "logs", "list")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class SubmitError(RuntimeError):
    """A problem talking to the cluster (address, authentication, unknown job)."""


# ------------------------------------------------------------------ auth


@dataclass
class Token:
    value: str
    source: str


def resolve_token(token_file: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
                  home: Optional[Path] = None) -> Optional[Token]:
    """The cluster token the way Ray looks it up (``--token-file`` first); None without one or when disabled."""
    env = os.environ if env is None else env
    if env.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return None
    if token_file:
        path = Path(token_file).expanduser()
        if not path.is_file() or not path.read_text().strip():
            raise SubmitError(f"--token-file {path}: no such file or it is empty")
        return Token(path.read_text().strip(), f"--token-file {path}")
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return Token(env["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN")
    if env.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(env["RAY_AUTH_TOKEN_PATH"]).expanduser()
        if not path.is_file() or not path.read_text().strip():
            raise SubmitError(f"RAY_AUTH_TOKEN_PATH={path}: no such file or it is empty")
        return Token(path.read_text().strip(), f"RAY_AUTH_TOKEN_PATH ({path})")
    default = (home or Path.home()) / ".ray" / "auth_token"
    if default.is_file() and default.read_text().strip():
        return Token(default.read_text().strip(), str(default))
    return None


def auth_headers(token: Optional[Token]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.value}"} if token else {}


def client(address: str, token: Optional[Token]) -> Any:
    """A ``JobSubmissionClient`` for ``address`` that authenticates with ``token``."""
    if token:
        os.environ["RAY_AUTH_MODE"] = "token"
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=auth_headers(token))
    except Exception as exc:  # noqa: BLE001 - turn connection/auth failures into one clear message
        raise SubmitError(_explain(exc, address, token)) from None


def _explain(exc: Exception, address: str, token: Optional[Token]) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if "401" in text or "Authentication required" in text or "Unauthorized" in text:
        return (f"the Ray cluster at {address} requires a token (Ray token authentication) and none was sent: "
                "set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH / --token-file to a file holding it, or copy it to "
                "~/.ray/auth_token (`ray get-auth-token` on the head node prints it)")
    if "403" in text or "Authentication failed" in text or "Forbidden" in text:
        source = token.source if token else "?"
        return f"the Ray cluster at {address} rejected the token from {source}: it is not this cluster's token"
    if "Failed to connect" in text or "Connection" in text or "refused" in text:
        return f"cannot reach the Ray dashboard at {address} (is the head running with its dashboard there?): {first}"
    return f"Ray Jobs request to {address} failed: {first}"


# ------------------------------------------------------------- the job


def is_secret_name(name: str) -> bool:
    """True for variable names that look like they hold a secret (see :data:`SECRET_NAME`)."""
    return SECRET_NAME.search(name) is not None


def withheld_secrets(env: Optional[Mapping[str, str]] = None) -> list[str]:
    """Names of the client's ``WANDB_*`` variables that are secrets and so are not forwarded."""
    env = os.environ if env is None else env
    return sorted(k for k in env if k.startswith(FORWARD_PREFIXES) and is_secret_name(k))


def forwarded_env(env: Optional[Mapping[str, str]] = None, extra: Sequence[str] = ()) -> dict[str, str]:
    """``WANDB_*`` variables of the client (secrets excepted) plus ``KEY=VALUE`` items of ``--env``.

    A secret-looking ``--env`` key raises :class:`SubmitError` (use ``--secrets-file``).
    """
    env = os.environ if env is None else env
    out = {k: v for k, v in env.items() if k.startswith(FORWARD_PREFIXES) and not is_secret_name(k)}
    for item in extra:
        if "=" not in item:
            raise SubmitError(f"--env {item.split('=', 1)[0]!r}: not of the form KEY=VALUE")
        key, value = item.split("=", 1)
        if is_secret_name(key):
            raise SubmitError(f"--env {key}=...: looks like a secret, and Ray logs the job's runtime env in plain "
                              "text; put it in a --secrets-file or in the Ray nodes' environment")
        out[key] = value
    return out


def runtime_env(working_dir: Path, env_vars: Mapping[str, str]) -> dict[str, Any]:
    """The job's runtime environment: the repository as working_dir (minus runs/, .venv/, ...) and env vars."""
    if not (working_dir / "launch" / "train.py").is_file():
        raise SubmitError(f"--working-dir {working_dir} is not a vrs-rl checkout (no launch/train.py)")
    return {"working_dir": str(working_dir), "excludes": list(EXCLUDES), "env_vars": dict(env_vars)}


def entrypoint(module: str, items: Sequence[str], secrets_file: Optional[str] = None) -> str:
    """``python -m <module> <items>``; the job's driver joins the cluster (``cluster.address=auto``).

    With ``secrets_file``: ``python -m launch.with_secrets <file> <module> <items>`` (the driver
    reads the file; only its path goes through Ray).
    """
    if module not in MODULES:
        raise SubmitError(f"--module {module!r}; expected one of {list(MODULES)}")
    bad = [i for i in items if "=" not in i]
    if bad:
        raise SubmitError(f"arguments {bad} are not key=value overrides")
    items = list(items)
    if not any(i.split("=", 1)[0].lstrip("+") == "cluster.address" for i in items):
        items.append("cluster.address=auto")
    if secrets_file:
        return shlex.join(["python", "-m", "launch.with_secrets", str(secrets_file), module, *items])
    return shlex.join(["python", "-m", module, *items])


def submit(jobs: Any, module: str, items: Sequence[str], working_dir: Path, env_vars: Mapping[str, str],
           submission_id: Optional[str] = None, secrets_file: Optional[str] = None) -> str:
    """Submit one run; returns its job (submission) id."""
    recipe = next((i.split("=", 1)[1] for i in items if i.startswith("recipe=")), "")
    leaked = sorted(k for k in env_vars if is_secret_name(k))
    if leaked:  # forwarded_env never gives these; guard direct callers too
        raise SubmitError(f"secret-looking variables {leaked} must not go into the job's runtime env")
    try:
        return jobs.submit_job(
            entrypoint=entrypoint(module, items, secrets_file), runtime_env=runtime_env(working_dir, env_vars),
            submission_id=submission_id, metadata={"module": module, "recipe": recipe},
        )
    except SubmitError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SubmitError(_explain(exc, getattr(jobs, "_address", "?"), None)) from None


def follow(jobs: Any, job_id: str, out: Any = None) -> str:
    """Print the job's logs as they come until it ends; returns its final status."""
    out = out or sys.stdout

    async def _tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    asyncio.run(_tail())
    return wait(jobs, job_id, timeout_s=60)


def wait(jobs: Any, job_id: str, timeout_s: float = 600.0, poll_s: float = 1.0) -> str:
    """Poll until the job is SUCCEEDED, FAILED or STOPPED (or the timeout); returns the status name."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(jobs.get_job_status(job_id).value)
        if status in TERMINAL or time.monotonic() > deadline:
            return status
        time.sleep(poll_s)


# ------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    from data.cli_help import KEYS_DOC, config_groups, doc_parser, format_groups

    epilog = "\n\n".join([format_groups(config_groups(("recipe", "cluster", "profile", "sweep"))), KEYS_DOC])
    p = doc_parser("python -m launch.submit", __doc__, epilog=epilog,
                   usage="python -m launch.submit [options] [recipe=NAME] [cluster=NAME] [key=value ...]\n"
                         "       python -m launch.submit {status,stop,logs,list} [JOB_ID] [options]")
    p.add_argument("--address", default=None,
                   help=f"Ray dashboard address (default: $RAY_ADDRESS if http(s), else {DEFAULT_ADDRESS})")
    p.add_argument("--token-file", default=None, help="file holding the cluster's auth token")
    p.add_argument("--module", default="launch.train", help=f"launcher to run, one of {list(MODULES)}")
    p.add_argument("--working-dir", default=str(REPO), help="repository uploaded as the job's working_dir")
    p.add_argument("--submission-id", default=None, help="job id to use (default: Ray chooses)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra job environment variable (not for secrets: Ray logs these)")
    p.add_argument("--secrets-file", default=None, metavar="PATH",
                   help="KEY=VALUE file (mode 600) the head node can read; the job's driver loads it "
                        "(only the path goes through Ray)")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return without following logs")
    p.add_argument("--follow", action="store_true", help="logs: keep following until the job ends")
    return p


def _check_secrets_file(path: Optional[str]) -> Optional[str]:
    """Absolute path of ``--secrets-file``, checked here when this machine can read it."""
    if not path:
        return None
    from launch.with_secrets import SecretsFileError, read_secrets_file

    resolved = Path(path).expanduser().resolve()
    if resolved.is_file():
        try:
            read_secrets_file(resolved)
        except SecretsFileError as exc:
            raise SubmitError(str(exc)) from None
    else:
        print(f"note: {resolved} is not readable here; it must exist on the head node", file=sys.stderr)
    return str(resolved)


def _address(arg: Optional[str]) -> str:
    if arg:
        return arg
    env = os.environ.get("RAY_ADDRESS", "")
    return env if env.startswith(("http://", "https://")) else DEFAULT_ADDRESS


def config_problem(module: str, items: Sequence[str]) -> Optional[str]:
    """The job's config resolved and validated here, with the loader the job itself runs
    (:func:`launch.common.launch_config`, or the sweep file for ``launch.sweep``): the error
    message naming the key, or None. Files the config names are not checked (they are the cluster's)."""
    from rl.config import ConfigError

    overrides = [i for i in items if "=" in i]
    try:
        if module in ("launch.train", "launch.sft"):
            from launch.common import launch_config

            launch_config(overrides)
        elif module == "launch.sweep":
            from rl.sweep.spec import load_sweep

            path = next((i.split("=", 1)[1] for i in overrides if i.startswith("sweep=")), "")
            if path:
                load_sweep(path, [i for i in overrides if not i.startswith("sweep=")]).base_config()
    except ConfigError as exc:
        return str(exc)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = _parser().parse_known_args(argv)
    command = rest[0] if rest and rest[0] in COMMANDS else "submit"
    positional = rest[1:] if command != "submit" else rest
    unknown = [a for a in positional if a.startswith("-")]
    if unknown:
        print(f"unknown option(s): {unknown}", file=sys.stderr)
        return 2
    if command == "submit":
        problem = config_problem(args.module, positional)
        if problem:
            print(f"config error: {problem} (nothing was submitted)", file=sys.stderr)
            return 2
    address = _address(args.address)
    try:
        token = resolve_token(args.token_file)
        if token:
            print(f"auth: token from {token.source}", file=sys.stderr)
        jobs = client(address, token)
        return _run(command, jobs, args, positional, address)
    except SubmitError as exc:
        print(f"submit error: {exc}", file=sys.stderr)
        return 2


def _run(command: str, jobs: Any, args: argparse.Namespace, positional: list[str], address: str) -> int:
    if command == "list":
        for job in jobs.list_jobs():
            print(f"{job.submission_id}  {job.status.value:<9} {job.entrypoint}")
        return 0
    if command != "submit":
        if len(positional) != 1:
            print(f"usage: python -m launch.submit {command} JOB_ID [--address ...]", file=sys.stderr)
            return 2
        job_id = positional[0]
        try:
            if command == "status":
                info = jobs.get_job_info(job_id)
                print(f"{job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
                print(f"entrypoint: {info.entrypoint}")
                return 0
            if command == "stop":
                jobs.stop_job(job_id)
                status = wait(jobs, job_id, timeout_s=120)
                print(f"{job_id}: {status}")
                return 0 if status in TERMINAL else 1
            if args.follow:
                return 0 if follow(jobs, job_id) == "SUCCEEDED" else 1
            sys.stdout.write(jobs.get_job_logs(job_id))
            return 0
        except Exception as exc:  # noqa: BLE001 - unknown job id, connection lost, ...
            raise SubmitError(_explain(exc, address, None) if "404" not in str(exc)
                              else f"no job {job_id!r} on {address}") from None
    env_vars = forwarded_env(extra=args.env)
    secrets_file = _check_secrets_file(args.secrets_file)
    withheld = withheld_secrets()
    if withheld:
        where = f"the job reads {secrets_file}" if secrets_file else "the job sees only the Ray nodes' environment"
        print(f"note: {', '.join(withheld)} not forwarded (Ray logs runtime envs in plain text); {where}",
              file=sys.stderr)
    job_id = submit(jobs, args.module, positional, Path(args.working_dir).resolve(), env_vars, args.submission_id,
                    secrets_file)
    print(f"submitted job {job_id} to {address}")
    print(f"  status: python -m launch.submit status {job_id} --address {address}")
    print(f"  stop:   python -m launch.submit stop {job_id} --address {address}")
    sys.stdout.flush()
    if args.no_wait:
        return 0
    try:
        status = follow(jobs, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} keeps running", file=sys.stderr)
        return 130
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


if __name__ == "__main__":
    raise SystemExit(main())
