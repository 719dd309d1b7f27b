"""The ``trainer``, ``tracking`` and ``sft`` config sections: the phases of a run and their logging.

Imports nothing heavy: ``rl.config`` nests these dataclasses; the driver
(:mod:`rl.driver`), the run sequence (:mod:`rl.run`), the tracker (:mod:`rl.tracking`)
and the SFT cold start (:mod:`rl.sft`) read them. ``Literal`` fields list their choices
and ``Annotated[T, "<bound>"]`` states a range (checked at start-up; see :mod:`rl.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from rl.models.config import LoraConfig
from rl.workers.config import LR_SCHEDULERS

#: ``trainer.device`` values.
DEVICES = ("cpu", "cuda")
#: ``tracking.wandb_mode`` values.
WANDB_MODES = ("online", "offline", "disabled")
#: ``sft.targets`` values: each record's built ``sft_target``, or its ``teacher_cot["target"]``.
SFT_TARGETS = ("template", "teacher")


@dataclass
class TrainerConfig:
    """The training loop: steps, checkpoints, validation, logging, resume."""

    # Project name (for logs and exports).
    project_name: str = "vrs-rl"
    # Experiment name (default W&B run name).
    experiment_name: str = "quickstart"
    # Run directory; checkpoints, metrics.jsonl, samples and W&B offline files go here.
    run_dir: str = "runs/quickstart"
    # GRPO steps to train.
    total_steps: Annotated[int, ">= 1"] = 200
    # Prompts per GRPO step (x rollout.n responses).
    train_batch_size: Annotated[int, ">= 1"] = 16
    # One-step off-policy generation: 0 = synchronous (generate, then train on it); 1 = the rollout
    # engines generate step k+1's batch with the weights before update k while the actor trains on
    # step k (staleness 1, logged as training/off_policy/trajectory_staleness/*; needs rollout
    # engines on devices of their own and algorithm.filter_groups.enable=false; docs/grpo.md).
    off_policy_steps: Annotated[int, ">= 0, <= 1"] = 0
    # Checkpoint every k steps (and at the end).
    save_freq: Annotated[int, ">= 0"] = 25
    # Complete checkpoints kept (older ones are deleted; <= 0 keeps all).
    keep_last_checkpoints: int = 2
    # Validation every k steps (0 = never) and at the end.
    val_freq: Annotated[int, ">= 0"] = 0
    # Held-out prompts per validation.
    val_num_prompts: Annotated[int, ">= 1"] = 32
    # A fresh run (not a resumed one) validates the starting policy before step 1 and logs it at
    # step 0: the held-out prompts when val_freq > 0, the video evaluation when eval.freq > 0.
    val_before_train: bool = True
    # Only validate the starting policy (held-out prompts, and the video evaluation when
    # eval.freq > 0), log it and stop without training.
    val_only: bool = False
    # Sample table every k steps (0 = never).
    log_samples_freq: Annotated[int, ">= 0"] = 25
    # Rows of the sample table.
    log_samples_count: Annotated[int, ">= 0"] = 8
    # auto (latest checkpoint in run_dir if any) | never | path to a checkpoint dir
    resume: str = "auto"
    # Start a new run in a run_dir that holds another run: its contents move to <run_dir>.backup-<time>.
    overwrite: bool = False
    # Seed of the data order, sampling and workers.
    seed: Annotated[int, ">= 0"] = 0
    # cpu | cuda
    device: Literal[DEVICES] = "cpu"
    # Export an HF-format policy at the end of training.
    export_hf: bool = True


@dataclass
class TrackingConfig:
    """W&B tracking (metrics.jsonl is always written)."""

    # online | offline | disabled
    wandb_mode: Literal[WANDB_MODES] = "offline"
    # W&B project.
    project: str = "vrs-rl"
    # W&B entity (team or user; empty = default).
    entity: str = ""
    # W&B group (sweeps put their trials in one group).
    group: str = ""
    # W&B run name (empty = trainer.experiment_name).
    name: str = ""
    # W&B tags.
    tags: list[str] = field(default_factory=list)


@dataclass
class SFTConfig:
    """CoT-SFT cold start (RCoT-Seg: LoRA rank 8, lr 1e-4, cosine, warmup 0.1, 1 epoch)."""

    # Output checkpoint (HF format). Empty: <trainer.run_dir>/sft.
    output_dir: str = ""
    # Reuse an existing output_dir checkpoint instead of training again.
    skip_if_exists: bool = True
    # What each sample is trained to answer: template (its built "sft_target": a templated
    # reasoning + the exact ground truth) | teacher (its teacher_cot["target"], a teacher's trace
    # kept by `python -m launch.annotate cot`; samples without one are skipped and counted).
    targets: Literal[SFT_TARGETS] = "template"
    # Samples of the cold start ("" = the run's training samples): e.g. the output of
    # `python -m launch.annotate cot`, while GRPO trains on data.samples_path. Its "train" split is used.
    samples_path: str = ""
    # Epochs over the SFT samples (used when max_steps <= 0).
    epochs: Annotated[float, "> 0"] = 1.0
    # SFT optimizer steps (-1 = from epochs).
    max_steps: Annotated[int, "== -1 or >= 1"] = -1
    # SFT samples per optimizer step (global).
    batch_size: Annotated[int, ">= 1"] = 32
    # SFT samples per forward/backward on one worker (used when max_tokens_per_micro_batch is 0).
    micro_batch_size_per_worker: Annotated[int, ">= 1"] = 16
    # Token budget of one SFT forward/backward on one worker (as actor.max_tokens_per_micro_batch;
    # actor.packing applies). 0 = fixed-size micro-batches of micro_batch_size_per_worker.
    max_tokens_per_micro_batch: Annotated[int, ">= 0"] = 0
    # SFT learning rate.
    lr: Annotated[float, "> 0"] = 1e-4
    # constant | cosine
    lr_scheduler: Literal[LR_SCHEDULERS] = "cosine"
    # Fraction of the SFT steps with linear warm-up.
    warmup_ratio: Annotated[float, ">= 0, <= 1"] = 0.1
    # SFT AdamW weight decay.
    weight_decay: Annotated[float, ">= 0"] = 0.0
    # SFT gradient-norm clipping threshold (<= 0: no clipping; the norm is still logged).
    grad_clip: float = 1.0
    lora: LoraConfig = field(default_factory=LoraConfig)
    # Print SFT metrics every k steps.
    log_freq: Annotated[int, ">= 1"] = 25
