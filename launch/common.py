"""Shared start-up of the launchers: config, logging, paths, data, model, Ray."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from rl.config import Config, ConfigError, load_config, parse_cli, to_yaml

log = logging.getLogger("launch")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "PIL", "matplotlib", "wandb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def config_from_argv(argv: Sequence[str], default_recipe: Optional[str] = "quickstart") -> tuple[Config, list[str]]:
    """``key=value`` overrides (and ``recipe=``/``cluster=``) -> validated Config; returns leftover flags.

    A config error prints one clear line and exits with status 2.
    """
    overrides, flags = parse_cli(argv)
    if default_recipe and not any(o.startswith("recipe=") for o in overrides):
        overrides = [f"recipe={default_recipe}", *overrides]
    try:
        cfg = load_config(overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return absolutize(cfg), flags


def absolutize(cfg: Config) -> Config:
    """Resolve relative paths against the current folder (Ray workers may run elsewhere)."""
    cfg.trainer.run_dir = str(Path(cfg.trainer.run_dir).resolve())
    cfg.data.root = str(Path(cfg.data.root).resolve())
    for holder, key in ((cfg.data, "samples_path"), (cfg.model, "path"), (cfg.sft, "output_dir"),
                        (cfg.reward.segmenter, "checkpoint"), (cfg.eval, "checkpoint"), (cfg.eval, "dataset_root"),
                        (cfg.eval, "out_dir"), (cfg.eval, "sampler_model"), (cfg.eval, "xmem_checkpoint"),
                        (cfg.eval.segmenter, "checkpoint")):
        value = getattr(holder, key)
        if value and "://" not in value:
            setattr(holder, key, str(Path(value).resolve()))
    return cfg


def save_resolved_config(cfg: Config, name: str = "config.yaml") -> Path:
    run_dir = Path(cfg.trainer.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    path.write_text(to_yaml(cfg))
    return path


@dataclass
class PreparedData:
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]


def prepare_data(cfg: Config) -> PreparedData:
    """Generate the synthetic data set if needed, build the training samples, load them.

    ``data.samples_path`` points at pre-built samples (split by their ``"split"`` field);
    otherwise the samples are (re)built deterministically into ``<run_dir>/data/``, so a
    resumed run sees the same records in the same order.
    """
    from data.build import build_samples, load_samples

    if cfg.data.samples_path:
        path = Path(cfg.data.samples_path)
        if not path.exists():
            raise FileNotFoundError(f"data.samples_path does not exist: {path}")
    else:
        path = Path(cfg.trainer.run_dir) / "data" / f"{cfg.data.task}.jsonl"
        report = build_samples(cfg.data, path, reward=cfg.reward.name,
                               tau_neg=cfg.reward.params.videoseg_r1.tau_neg)
        log.info("data: built %d samples (%s), skipped %s", report.built, dict(report.by_split),
                 dict(report.skipped) or "nothing")
    train, val = load_samples(path, split="train"), load_samples(path, split="val")
    if not train:
        raise ValueError(f"no training samples in {path}")
    return PreparedData(train, val)


def init_ray(cfg: Config) -> None:
    """Connect to ``cluster.address`` or start a local Ray instance sized by the cluster config."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    env_vars = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env_vars}, "log_to_driver": True}
    if cfg.cluster.address:
        kwargs["address"] = cfg.cluster.address
    else:
        kwargs["num_cpus"] = cfg.cluster.num_cpus
        kwargs["include_dashboard"] = False
    ray.init(**kwargs)


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def image_size(cfg: Config) -> int:
    return int(max(cfg.data.input_size))
