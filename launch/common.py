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


def missing_files(cfg: Config) -> list[str]:
    """``key = path`` of every configured input file the run will read that does not exist.

    Checked on the machine that runs (not by ``launch.submit``: a submitted config names files
    of the cluster): ``model.path``, ``data.samples_path``, the SAM2 checkpoint of the reward's
    segmenter (when the reward uses masks), and, when the run evaluates (``eval.freq > 0``),
    the evaluated checkpoint, the sampler model and the SAM2 / XMem weights the pipeline loads.
    """
    from pathlib import Path

    from rewards.registry import mask_rewards

    checks = [("model.path", cfg.model.path), ("data.samples_path", cfg.data.samples_path)]
    if cfg.reward.segmenter.backend == "sam2" and cfg.reward.name in mask_rewards():
        checks.append(("reward.segmenter.checkpoint", cfg.reward.segmenter.checkpoint))
    ev = cfg.eval
    if ev.freq > 0:
        checks += [("eval.checkpoint", ev.checkpoint), ("eval.sampler_model", ev.sampler_model)]
        if "sam2" in (ev.segmenter.backend, ev.propagator):
            checks.append(("eval.segmenter.checkpoint", ev.segmenter.checkpoint))
        if ev.propagator == "xmem":
            checks.append(("eval.xmem_checkpoint", ev.xmem_checkpoint))
    return [f"{key} = {path!r}" for key, path in checks if path and "://" not in path and not Path(path).exists()]


def config_from_argv(argv: Sequence[str], default_recipe: Optional[str] = "quickstart",
                     check_files: bool = True) -> tuple[Config, list[str]]:
    """``key=value`` overrides (and ``recipe=``/``cluster=``) -> validated Config with absolute paths;
    returns leftover flags.

    A config error (a bad value, or with ``check_files`` a configured input file that does not
    exist, :func:`missing_files`; never for ``--dry-run``) prints one clear line and exits with status 2.
    """
    overrides, flags = parse_cli(argv)
    try:
        cfg = absolutize(launch_config(overrides, default_recipe))
        missing = missing_files(cfg) if check_files and "--dry-run" not in flags else []
        if missing:
            raise ConfigError(f"file(s) not found: {'; '.join(missing)}")
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return cfg, flags
