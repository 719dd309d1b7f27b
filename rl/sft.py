"""CoT-SFT cold start on the same FSDP2 policy workers as GRPO.

Trains on each record's ``prompt`` -> target (reasoning + answer) with token-mean NLL over
the target tokens, full or LoRA (``sft.lora.rank``), and exports an HF checkpoint: the GRPO
starting point and KL reference. The target (:func:`sft_examples`, ``sft.targets``) is the
record's built ``sft_target`` (``template``) or the teacher trace that
``python -m launch.annotate cot`` stored in ``teacher_cot["target"]`` (``teacher``). Records of
different tasks (e.g. KTG and AKS traces in one file) train together: each keeps its own
prompt, images and target.

Tracking: ``sft/loss``, ``sft/grad_norm``, ``sft/lr``, ``sft/num_tokens`` per step go to
``<sft.output_dir>/logs/metrics.jsonl`` and, unless ``tracking.wandb_mode=disabled``, to a W&B
run of their own (:func:`sft_tracker`): same project and group as the GRPO run, job type
``sft``, named ``<run name>-sft``, its files under ``<trainer.run_dir>/wandb``. It is finished
before the GRPO run starts its own W&B run.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from tqdm import tqdm

from rl.config import Config
from rl.placement import PlacementPlan
from rl.prompt_loader import PromptLoader
from rl.tracking import Tracker

log = logging.getLogger(__name__)

COMPLETE_MARKER = "sft_complete.json"


def sft_output_dir(cfg: Config) -> Path:
    return Path(cfg.sft.output_dir) if cfg.sft.output_dir else Path(cfg.trainer.run_dir) / "sft"


def is_complete(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and (path / "config.json").is_file()


# Keys of the cold start's inputs that do not change what it trains.
_SFT_BOOKKEEPING = ("sft.output_dir", "sft.skip_if_exists", "sft.log_freq")
# Settings added after checkpoints already recorded theirs: the value those checkpoints were made
# with (a checkpoint that does not record sft.targets was trained on the built templates).
_SETTINGS_BEFORE_RECORDED = {"sft.targets": "template", "sft.samples_path": "", "sft.max_tokens_per_micro_batch": 0}
# Ids of skipped records named in the log line.
_SHOWN_IDS = 5


def sft_settings(cfg: Config) -> dict[str, Any]:
    """What an SFT checkpoint depends on, as dotted keys: ``sft.*`` (but where it goes and how
    often it logs), ``model.*``, ``data.*`` (the samples), the reward the samples are built for
    and ``trainer.seed`` (the batch order). Stored in its completion marker."""
    from rl.config import to_dict

    tree = to_dict(cfg)
    picked = {"sft": tree["sft"], "model": tree["model"], "data": tree["data"],
              "reward": {"name": cfg.reward.name, "tau_neg": cfg.reward.params.videoseg_r1.tau_neg},
              "trainer": {"seed": cfg.trainer.seed}}
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        elif prefix[:-1] not in _SFT_BOOKKEEPING:
            flat[prefix[:-1]] = node

    walk(picked, "")
    return json.loads(json.dumps(flat, sort_keys=True, default=str))


def recorded_settings(path: Path) -> Optional[dict[str, Any]]:
    """The :func:`sft_settings` stored with a complete checkpoint (None: not recorded, an older build)."""
    try:
        marker = json.loads((path / COMPLETE_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    settings = marker.get("settings") if isinstance(marker, dict) else None
    return {**_SETTINGS_BEFORE_RECORDED, **settings} if isinstance(settings, dict) else None


def sft_tracker(cfg: Config, out_dir: Path) -> Tracker:
    """The tracker of the cold start: ``metrics.jsonl`` in ``<out_dir>/logs``; a W&B run (``tracking.*``
    mode, project and entity) in the GRPO run's group (``tracking.group``, default
    ``trainer.experiment_name``), job type ``sft``, named ``<tracking.name or trainer.experiment_name>-sft``."""
    from dataclasses import replace

    from rl.config import to_dict

    run_name = cfg.tracking.name or cfg.trainer.experiment_name
    tracking = replace(cfg.tracking, name=f"{run_name}-sft", group=cfg.tracking.group or cfg.trainer.experiment_name)
    return Tracker(out_dir / "logs", tracking, to_dict(cfg), job_type="sft", wandb_dir=cfg.trainer.run_dir,
                   step_metric="sft/step", metric_groups=("sft",))


def sft_steps(cfg: Config, num_records: int) -> int:
    if cfg.sft.max_steps > 0:
        return cfg.sft.max_steps
    return max(1, math.ceil(cfg.sft.epochs * num_records / cfg.sft.batch_size))


def teacher_target(record: dict[str, Any]) -> Optional[str]:
    """The kept teacher trace of ``record`` (``teacher_cot["target"]``, a non-empty str), else None."""
    cot = record.get("teacher_cot")
    target = cot.get("target") if isinstance(cot, dict) else None
    return target if isinstance(target, str) and target.strip() else None


class NoSftTargets(ValueError):
    """No training record has a target of the kind ``sft.targets`` asks for."""


def sft_examples(cfg: Config, records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records the cold start trains on and their target texts (same order, same length).

    ``sft.targets=template``: records with a built ``sft_target``. ``teacher``: records with a
    teacher trace (:func:`teacher_target`); the others are skipped, counted and logged once (their
    number and the first few ids). Records of any task mix. Raises ``ValueError`` when no record
    has a target of the chosen kind (:class:`NoSftTargets`, a ``ValueError``).
    """
    if cfg.sft.targets == "template":
        kept = [r for r in records if r.get("sft_target")]
        if not kept:
            raise NoSftTargets("SFT: no record carries an 'sft_target' (build the data with data.build first)")
        return kept, [r["sft_target"] for r in kept]
    kept, targets, skipped = [], [], []
    for record in records:
        target = teacher_target(record)
        if target is None:
            skipped.append(str(record.get("id", "?")))
        else:
            kept.append(record)
            targets.append(target)
    if not kept:
        raise NoSftTargets(
            f"SFT: sft.targets=teacher but none of the {len(records)} training samples carries a teacher trace "
            "('teacher_cot'); run `python -m launch.annotate cot` on the built samples and set sft.samples_path "
            "(or data.samples_path) to its output (<output_dir>/cot.jsonl; its summary.json counts the samples whose traces were "
            "unparseable or below annotate.cot.threshold), or use sft.targets=template")
    if skipped:
        shown = ", ".join(skipped[:_SHOWN_IDS]) + (", ..." if len(skipped) > _SHOWN_IDS else "")
        log.warning("SFT: %d of %d training samples carry no teacher trace (no kept 'teacher_cot') and are "
                    "skipped: %s", len(skipped), len(records), shown)
    return kept, targets


def run_sft(cfg: Config, init_path: str, records: Sequence[dict[str, Any]]) -> Path:
    """Fine-tune ``init_path`` on ``records``; returns the exported HF checkpoint dir."""

    from rl.models.encoded_batch import EncodedBatch
    from rl.models.inputs import encode_for_sft
    from rl.models.loading import load_processor
    from rl.workers.policy_group import PolicyGroup

    out_dir = sft_output_dir(cfg)
    records, targets = sft_examples(cfg, records)
    steps = sft_steps(cfg, len(records))
    tracker = sft_tracker(cfg, out_dir)
    plan = PlacementPlan(cfg.cluster, {"actor": cfg.cluster.actor.num_workers})
    group = None
    try:
        plan.create()
        group = PolicyGroup("sft", plan, placement_role="actor", model_path=init_path, model_cfg=cfg.model,
                            actor_cfg=cfg.actor, sft_cfg=cfg.sft, total_steps=steps)
        processor = load_processor(init_path)
        # Encode every sample once (image processing + tokenisation), then slice batches from it.
        starts = range(0, len(records), 64)
        dataset = EncodedBatch.concat([
            encode_for_sft(processor, records[i:i + 64], targets[i:i + 64])
            for i in tqdm(starts, desc="encode SFT samples", unit="chunk", dynamic_ncols=True)
        ])
        # Fewer samples than sft.batch_size: one batch of all of them, cut to a multiple of the ranks.
        batch_size = min(cfg.sft.batch_size, len(records)) // group.world_size * group.world_size
        if batch_size == 0:
            raise ValueError(f"SFT needs at least {group.world_size} samples (one per rank), got {len(records)}")
        loader = PromptLoader(list(records), batch_size, seed=cfg.trainer.seed)
        bar = tqdm(range(1, steps + 1), desc="SFT", unit="step", dynamic_ncols=True)
        for step in bar:
            encoded = dataset.select(loader.next_indices()).trimmed()
            num_tokens = int(encoded.response_mask.sum())
            shards = group.shard(encoded) if len(encoded) % group.world_size == 0 else None
            if shards is None:
                raise ValueError(f"SFT batch {len(encoded)} not divisible by {group.world_size} ranks")
            metrics = group.sft_step(shards, num_tokens)
            tracker.log(metrics, step)
            if step % max(1, cfg.sft.log_freq) == 0 or step == steps:
                bar.set_postfix(loss=f"{metrics.get('sft/loss', float('nan')):.3f}")
                log.info("sft step %d/%d %s", step, steps, {k: round(v, 4) for k, v in metrics.items()})
        group.export_hf(str(out_dir))
        (out_dir / COMPLETE_MARKER).write_text(json.dumps({"steps": steps, "init": str(init_path),
                                                           "settings": sft_settings(cfg)}))
    finally:
        tracker.finish()
        if group is not None:
            group.shutdown()
        plan.remove()
    return out_dir
