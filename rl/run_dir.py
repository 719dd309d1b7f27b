"""A run directory belongs to one run: its id and settings live in ``<run_dir>/run.json``.

:func:`claim_run_dir` is the first thing a training run does:

- a new (or empty) run directory gets a fresh ``run.json``;
- a run directory of an earlier run is continued only when the new config differs from
  that run's settings in keys that may change on resume (:data:`MAY_CHANGE_ON_RESUME`:
  step counts, frequencies, logging) and ``trainer.resume`` is not ``never``; anything else
  is refused with a :class:`RunDirError` naming ``trainer.run_dir`` and the options;
- ``trainer.overwrite=true`` moves the old contents to ``<run_dir>.backup-<time>/``
  (nothing is deleted) and starts a new run.

A directory with run outputs but no ``run.json`` (made before run ids existed) is adopted
when its ``config.yaml`` matches, and refused otherwise. Checkpoints carry the run id too
(:class:`rl.checkpoint.CheckpointManager`), so pruning never touches another run's steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from rl.config import Config, to_dict

log = logging.getLogger(__name__)

__all__ = ["MAY_CHANGE_ON_RESUME", "RUN_FILE", "RunDirError", "RunRecord", "backup_run_dir", "claim_run_dir",
           "read_run_id", "read_run_record", "run_settings", "settings_hash", "setting_differences"]

RUN_FILE = "run.json"
BACKUP_TAG = ".backup-"
# Config keys (dotted prefixes) that may differ between the starts of one run: how long it
# trains and how often it saves, validates and logs; where W&B and Ray are; how it starts.
MAY_CHANGE_ON_RESUME: tuple[str, ...] = (
    "trainer.run_dir", "trainer.total_steps", "trainer.save_freq", "trainer.keep_last_checkpoints",
    "trainer.val_freq", "trainer.val_before_train", "trainer.val_only", "trainer.log_samples_freq",
    "trainer.log_samples_count", "trainer.resume", "trainer.overwrite", "trainer.export_hf",
    "trainer.experiment_name", "eval.freq", "eval.progress", "tracking", "cluster.address", "cluster.num_cpus",
    "cluster.cpus_per_node",
)
# Files whose presence marks a directory as holding a run's outputs.
RUN_OUTPUTS = ("metrics.jsonl", "batches.jsonl", "samples.jsonl", "checkpoints", "export", "report.md")
# Left in place by trainer.overwrite: the cold start, which checks its own settings before reuse.
KEPT_ON_OVERWRITE = ("sft", "tiny_init")


class RunDirError(RuntimeError):
    """``trainer.run_dir`` holds another run; the message names the options."""


@dataclass
class RunRecord:
    """The contents of ``run.json``.

    Attributes:
        run_id: unique id of the run (also written into its checkpoints).
        config_hash: :func:`settings_hash` of ``settings``.
        created: local time the run was started (``YYYY-mm-dd HH:MM:SS``).
        settings: the run's config as dotted keys, without :data:`MAY_CHANGE_ON_RESUME`.
    """

    run_id: str
    config_hash: str
    created: str
    settings: dict[str, Any] = field(default_factory=dict)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _may_change(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in MAY_CHANGE_ON_RESUME)


def _settings_of(tree: Mapping[str, Any]) -> dict[str, Any]:
    # Through JSON so that tuples and lists (and int-valued floats) compare the way run.json stores them.
    flat = {k: v for k, v in _flatten(tree).items() if not _may_change(k)}
    return json.loads(json.dumps(flat, sort_keys=True, default=str))


def run_settings(cfg: Config) -> dict[str, Any]:
    """The settings that define a run: every config key except :data:`MAY_CHANGE_ON_RESUME`."""
    return _settings_of(to_dict(cfg))


def settings_hash(settings: Mapping[str, Any]) -> str:
    """Short stable hash of a settings dict (16 hex digits)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def setting_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"key: old -> new"`` for every key present in both with different values, sorted.
    Keys only one side has (added or removed by a code update) do not count."""
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(set(old) & set(new)) if old[k] != new[k]]


def read_run_record(run_dir: str | os.PathLike) -> Optional[RunRecord]:
    """The ``run.json`` of a run directory, or None when there is none.

    Raises:
        RunDirError: the file exists but is not a run record.
    """
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return RunRecord(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise RunDirError(f"trainer.run_dir={run_dir}: {path} is not a run record ({exc}); move it away or pass "
                          "trainer.overwrite=true") from exc


def read_run_id(run_dir: str | os.PathLike) -> str:
    """The run id of a run directory ("" when it has no ``run.json``)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return ""
    try:
        return str(json.loads(path.read_text()).get("run_id", ""))
    except (json.JSONDecodeError, AttributeError):
        return ""


def _write_record(run_dir: Path, record: RunRecord) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    os.replace(tmp, run_dir / RUN_FILE)


def _new_record(settings: dict[str, Any]) -> RunRecord:
    return RunRecord(run_id=uuid.uuid4().hex[:12], config_hash=settings_hash(settings),
                     created=time.strftime("%Y-%m-%d %H:%M:%S"), settings=settings)


def backup_run_dir(run_dir: str | os.PathLike, keep: tuple[str, ...] = KEPT_ON_OVERWRITE) -> Optional[Path]:
    """Move everything in ``run_dir`` except ``keep`` into a new sibling ``<name>.backup-<time>``.

    Returns the backup directory, or None when there was nothing to move."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    entries = sorted(p for p in run_dir.iterdir() if p.name not in keep)
    if not entries:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = run_dir.with_name(f"{run_dir.name}{BACKUP_TAG}{stamp}")
    suffix = 1
    while backup.exists():
        backup = run_dir.with_name(f"{run_dir.name}{BACKUP_TAG}{stamp}-{suffix}")
        suffix += 1
    backup.mkdir(parents=True)
    for entry in entries:
        shutil.move(str(entry), str(backup / entry.name))
    return backup


def _refusal(run_dir: Path, owner: str, reason: str) -> RunDirError:
    return RunDirError(
        f"trainer.run_dir={run_dir} already holds {owner}; {reason}. Options:\n"
        "  - continue that run: re-run with its settings (trainer.resume=auto, the default);\n"
        f"  - start a new run there: add trainer.overwrite=true (the old contents move to "
        f"{run_dir.name}{BACKUP_TAG}<time>/ next to it; nothing is deleted);\n"
        "  - or give this run another trainer.run_dir.")


def _changed(differences: list[str]) -> str:
    shown = differences[:8] + ([f"... {len(differences) - 8} more"] if len(differences) > 8 else [])
    return ("its settings differ in keys that cannot change on resume: " + "; ".join(shown)
            + " (only step counts, frequencies, logging and where Ray / W&B run may change: "
              "rl.run_dir.MAY_CHANGE_ON_RESUME, docs/runs.md)")


def _legacy_settings(run_dir: Path) -> Optional[dict[str, Any]]:
    """Settings of a run directory without ``run.json``, from its ``config.yaml`` (None if unreadable)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        tree = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception:  # noqa: BLE001 - any unreadable file means "cannot tell"
        return None
    return _settings_of(tree) if isinstance(tree, dict) else None


def claim_run_dir(cfg: Config) -> RunRecord:
    """Make ``cfg.trainer.run_dir`` this run's directory (see the module docstring); returns its record.

    Raises:
        RunDirError: the directory holds another run (or a run that ``trainer.resume=never`` would restart).
    """
    run_dir = Path(cfg.trainer.run_dir)
    settings = run_settings(cfg)
    if cfg.trainer.overwrite:
        backup = backup_run_dir(run_dir)
        if backup is not None:
            log.warning("trainer.overwrite=true: moved the previous contents of %s to %s", run_dir, backup)
        record = _new_record(settings)
        _write_record(run_dir, record)
        return record
    record = read_run_record(run_dir)
    never = cfg.trainer.resume == "never"
    if record is None:
        outputs = [name for name in RUN_OUTPUTS if (run_dir / name).exists()]
        if not outputs:
            record = _new_record(settings)
            _write_record(run_dir, record)
            return record
        owner = f"the outputs of an earlier run without a run id ({', '.join(outputs)})"
        if never:
            raise _refusal(run_dir, owner, "trainer.resume=never would start a new run over them")
        previous = _legacy_settings(run_dir)
        if previous is None:
            raise _refusal(run_dir, owner, "it has no readable config.yaml to tell whether this config continues it")
        differences = setting_differences(previous, settings)
        if differences:
            raise _refusal(run_dir, owner, _changed(differences))
        record = _new_record(settings)
        _write_record(run_dir, record)
        from rl.checkpoint import CheckpointManager

        adopted = CheckpointManager(run_dir, run_id=record.run_id).adopt()
        log.warning("%s has no %s: adopted it as run %s (its config.yaml matches; %d checkpoint(s) adopted)",
                    run_dir, RUN_FILE, record.run_id, len(adopted))
        return record
    owner = f"run {record.run_id} (started {record.created})"
    if never:
        raise _refusal(run_dir, owner, "trainer.resume=never would start a new run in it")
    differences = setting_differences(record.settings, settings)
    if differences:
        raise _refusal(run_dir, owner, _changed(differences))
    return record
