"""Start-up steps of a training run: absolute paths, the resolved config file, the data, Ray.

Used by :func:`rl.run.run_training` and the launchers (``launch.common`` re-exports them).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rl.config import Config, to_yaml

log = logging.getLogger(__name__)

__all__ = ["PreparedData", "absolutize", "image_size", "init_ray", "prepare_data", "save_resolved_config",
           "shutdown_ray"]


def absolutize(cfg: Config) -> Config:
    """Resolve relative paths against the current folder (Ray workers may run elsewhere)."""
    cfg.trainer.run_dir = str(Path(cfg.trainer.run_dir).resolve())
    cfg.data.root = str(Path(cfg.data.root).resolve())
    for holder, key in ((cfg.data, "samples_path"), (cfg.model, "path"), (cfg.sft, "output_dir"), (cfg.sft, "samples_path"),
                        (cfg.reward.segmenter, "checkpoint"), (cfg.eval, "checkpoint"), (cfg.eval, "dataset_root"),
                        (cfg.eval, "out_dir"), (cfg.eval, "sampler_model"), (cfg.eval, "xmem_checkpoint"),
                        (cfg.eval.segmenter, "checkpoint"), *((d, "dataset_root") for d in cfg.eval.datasets)):
        value = getattr(holder, key)
        if value and "://" not in value:
            setattr(holder, key, str(Path(value).resolve()))
    return cfg


def save_resolved_config(cfg: Config, name: str = "config.yaml") -> Path:
    """Write the resolved config to ``<run_dir>/<name>``; returns its path."""
    run_dir = Path(cfg.trainer.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / name
    path.write_text(to_yaml(cfg))
    return path


@dataclass
class PreparedData:
    """The training and held-out sample records of a run (one dict per sample)."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]


def prepare_data(cfg: Config) -> PreparedData:
    """Generate the synthetic data set if needed, build the training samples, load them.

    ``data.samples_path`` points at pre-built samples (split by their ``"split"`` field);
    otherwise the samples are (re)built deterministically into ``<run_dir>/data/``, so a
    resumed run sees the same records in the same order. A reward with a ``default_difficulty``
    (VideoSeg-R1) gets one log line on the training samples' stored difficulties
    (:mod:`rl.difficulty_check`).
    """
    from data.build import build_samples, load_samples
    from rl.difficulty_check import log_difficulty_coverage

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
    log_difficulty_coverage(cfg, train)
    return PreparedData(train, val)


def init_ray(cfg: Config, check_placement: bool = True) -> bool:
    """Connect to ``cluster.address`` or start a local Ray instance sized by the cluster config.

    Right after ``ray.init`` (before any actor) the run's placement plan is placed on the live
    nodes (:func:`rl.placement_sim.check_fits_cluster`, unless ``check_placement`` is False): a
    run the cluster cannot hold shuts Ray down again and raises
    :class:`rl.placement_sim.PlacementError` naming the resource and the config keys.

    Returns True when this call started (or connected) Ray, False when it was already up
    (e.g. inside a Ray Tune trial)."""
    import ray

    if ray.is_initialized():
        return False
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
    if check_placement:
        from rl.placement_sim import check_fits_cluster

        try:
            check_fits_cluster(cfg)
        except Exception:
            ray.shutdown()
            raise
    return True


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def image_size(cfg: Config) -> int:
    """Side of the square image the tiny policy is built for (the larger of ``data.input_size``)."""
    return int(max(cfg.data.input_size))
