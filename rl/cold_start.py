"""The starting policy of a GRPO run: ``model.path``, or this run's CoT-SFT cold start.

The SFT checkpoint (``sft.output_dir``, default ``<trainer.run_dir>/sft``) records the
settings it was trained with (:func:`rl.sft.sft_settings`). It is reused only when they
equal the current ones; otherwise (or when it predates the record) it is moved to
``<dir>.backup-<time>`` (never deleted) and trained again, with a warning naming what changed.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Optional

from rl.config import Config
from rl.run_dir import setting_differences
from rl.run_setup import PreparedData, image_size, init_ray, prepare_data

log = logging.getLogger(__name__)

__all__ = ["ensure_sft_checkpoint", "resolve_policy", "stale_sft_reason"]


def stale_sft_reason(cfg: Config, path: Path) -> Optional[str]:
    """Why the complete SFT checkpoint at ``path`` does not fit ``cfg`` (None: it fits)."""
    from rl.sft import recorded_settings, sft_settings

    recorded = recorded_settings(path)
    if recorded is None:
        return "it does not record the settings it was trained with (made by an older version)"
    current = sft_settings(cfg)
    differences = setting_differences(recorded, current)
    differences += [f"{k}: (not recorded) -> {current[k]!r}" for k in sorted(set(current) - set(recorded))]
    return "it was trained with other settings: " + "; ".join(differences) if differences else None


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup, suffix = path.with_name(f"{path.name}.backup-{stamp}"), 1
    while backup.exists():
        backup, suffix = path.with_name(f"{path.name}.backup-{stamp}-{suffix}"), suffix + 1
    shutil.move(str(path), str(backup))
    return backup


def ensure_sft_checkpoint(cfg: Config, force: bool = False, data: Optional[PreparedData] = None) -> Path:
    """The SFT checkpoint of this run: reused when complete and made with the same settings
    (and ``sft.skip_if_exists``), trained otherwise. A complete checkpoint made with other
    settings is moved aside first; ``force`` / ``sft.skip_if_exists=false`` retrain in place."""
    from rl.models.loading import ensure_policy
    from rl.sft import is_complete, run_sft, sft_examples, sft_output_dir

    out = sft_output_dir(cfg)
    if is_complete(out) and not force:
        reason = stale_sft_reason(cfg, out)
        if reason is None and cfg.sft.skip_if_exists:
            log.info("SFT checkpoint found: %s", out)
            return out
        if reason is not None:
            log.warning("not reusing the SFT checkpoint %s: %s; moved it to %s and training it again",
                        out, reason, _move_aside(out))
    if cfg.sft.samples_path:
        from data.build import load_samples

        train = load_samples(cfg.sft.samples_path, split="train")
        log.info("SFT samples: %d training records of sft.samples_path %s", len(train), cfg.sft.samples_path)
    else:
        train = (data if data is not None else prepare_data(cfg)).train
    records, _ = sft_examples(cfg, train)   # no usable target: stop before building or starting anything
    init_path = ensure_policy(cfg.model, cfg.trainer.run_dir, image_size(cfg))
    log.info("SFT: %d samples (%s targets), init %s -> %s", len(records), cfg.sft.targets, init_path, out)
    init_ray(cfg)
    return run_sft(cfg, str(init_path), records)


def resolve_policy(cfg: Config, data: Optional[PreparedData] = None) -> str:
    """``model.path`` when given, else this run's SFT checkpoint (trained if missing or stale;
    ``data``: the run's prepared samples, built here when not given)."""
    if cfg.model.path:
        if not Path(cfg.model.path).exists():
            raise FileNotFoundError(f"model.path does not exist: {cfg.model.path}")
        return cfg.model.path
    return str(ensure_sft_checkpoint(cfg, data=data))
