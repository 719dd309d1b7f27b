"""Shared start-up of the launchers: config and logging. Paths, data and Ray start-up live in
:mod:`rl.run_setup` (the library needs them too) and are re-exported here."""

from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from rl.config import Config, ConfigError, load_config, parse_cli
from rl.run_setup import (PreparedData, absolutize, image_size, init_ray, prepare_data,  # noqa: F401 - re-exported
                          save_resolved_config, shutdown_ray)

log = logging.getLogger("launch")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "PIL", "matplotlib", "wandb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def launch_config(overrides: Sequence[str], default_recipe: Optional[str] = "quickstart") -> Config:
    """The validated config of ``key=value`` overrides (and ``recipe=``/``cluster=``) as the launchers
    resolve it: ``recipe=<default_recipe>`` unless one is given. Raises :class:`ConfigError`."""
    overrides = list(overrides)
    if default_recipe and not any(o.startswith("recipe=") for o in overrides):
        overrides = [f"recipe={default_recipe}", *overrides]
    return load_config(overrides)


#: The flags of the ``key=value`` launchers that plan instead of running.
DRY_RUN, ALLOW_MISSING = "--dry-run", "--allow-missing"


def check_flags(flags: Sequence[str], allowed: Sequence[str], prog: str) -> Optional[str]:
    """The usage error for ``flags`` (unknown ones; ``--allow-missing`` without ``--dry-run``), or None."""
    unknown = [f for f in flags if f not in allowed]
    if unknown:
        return (f"unknown argument(s): {unknown}; use key=value overrides or {', '.join(allowed)} "
                f"(python -m {prog} --help)")
    if ALLOW_MISSING in flags and DRY_RUN in allowed and DRY_RUN not in flags:
        return f"{ALLOW_MISSING} only applies to {DRY_RUN} (a run needs its input files)"
    return None


def missing_inputs(cfg: Config, **checks: Optional[bool]) -> Optional[str]:
    """Pre-flight check of a run about to start (:func:`rl.preflight.preflight` with ``checks``):
    ``config error: ...`` naming every missing input's key and path, or None when nothing is missing."""
    from rl.preflight import preflight

    report = preflight(cfg, **checks)
    return f"config error: {report.error_text()}" if report.problems else None


def exit_on_missing_inputs(cfg: Config, **checks: Optional[bool]) -> None:
    """:func:`missing_inputs`, printed, then exit with status 2 (nothing when every input is there)."""
    message = missing_inputs(cfg, **checks)
    if message:
        print(message, file=sys.stderr)
        raise SystemExit(2)


def dry_run_inputs(cfg: Config, allow_missing: bool, **checks: Optional[bool]) -> int:
    """The pre-flight section of a ``--dry-run``: every checked input on stdout; problems on stderr as
    errors (returns 2) or, with ``--allow-missing``, as warnings (returns 0)."""
    from rl.preflight import preflight

    report = preflight(cfg, **checks)
    print(report.format())
    problems = report.problems
    if not problems:
        return 0
    keys = ", ".join(dict.fromkeys(p.key for p in problems))
    if allow_missing:
        print(f"warning: {len(problems)} missing input(s), listed above as MISSING ({keys}); allowed by "
              f"{ALLOW_MISSING}, but a run would stop here", file=sys.stderr)
        return 0
    print(f"config error: {len(problems)} missing input(s), listed above as MISSING ({keys}); a run would stop "
          f"here ({ALLOW_MISSING} reports them as warnings, for planning on a machine without them)", file=sys.stderr)
    return 2


def config_from_argv(argv: Sequence[str], default_recipe: Optional[str] = "quickstart",
                     check_files: bool = True, **checks: Optional[bool]) -> tuple[Config, list[str]]:
    """``key=value`` overrides (and ``recipe=``/``cluster=``) -> validated Config with absolute paths;
    returns leftover flags.

    A config error (a bad value, or with ``check_files`` an input the run reads that is missing or
    incomplete, :func:`rl.preflight.preflight` with ``checks``; not here for ``--dry-run``, which
    reports them after the plan) prints ``config error: ...`` and exits with status 2.
    """
    overrides, flags = parse_cli(argv)
    try:
        cfg = absolutize(launch_config(overrides, default_recipe))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if check_files and DRY_RUN not in flags:
        exit_on_missing_inputs(cfg, **checks)
    return cfg, flags
