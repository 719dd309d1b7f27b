"""Typed configuration: dataclass schemas, YAML recipes and ``key=value`` overrides.

Resolution order (later wins)::

    dataclass defaults  (== configs/default.yaml, checked by a test)
    configs/recipes/<recipe>.yaml          (``recipe=NAME``; after the recipe it ``extends:``)
    configs/cluster/<cluster>.yaml         (``cluster=NAME``, into ``cluster.*``)
    command-line ``key=value`` overrides   (verl / hydra style dotted keys)

Unknown keys and values of the wrong type fail at start-up with a
:class:`ConfigError` naming the offending key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rewards.params import RewardParams

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A configuration problem found at start-up (unknown key, wrong type, bad value)."""


# --------------------------------------------------------------------------- data


@dataclass
class SyntheticConfig:
    """Procedural synthetic videos written in the MeViS/ReVOS on-disk format."""

    # Number of generated videos (split into train/val by data.val_fraction).
    num_videos: int = 32
    # Frames per video.
    num_frames: int = 8
    # Frame height in pixels.
    height: int = 112
    # Frame width in pixels.
    width: int = 112
    # Most shapes drawn in one video.
    max_objects: int = 3
    # Generator seed: the same seed writes byte-identical data sets.
    seed: int = 0
    # "ramp": background colour channels ramp with x and y (gives a position
    # signal that Qwen2.5-VL's vision tower, lacking absolute position
    # embeddings, can learn from); "noise": textured noise; "plain".
    background: str = "ramp"
    # Per-pixel Gaussian noise (0..255 scale) added to the background.
    noise_std: float = 6.0
    # Every expression's target (union of its objects) covers at least this
    # fraction of the frame on at least one frame.
    min_target_area: float = 0.02
    # Largest shape extent (diameter) as a fraction of the shorter frame side.
    max_object_size: float = 0.35
    # Fastest speed of an object staying in view, fraction of the frame side per frame.
    max_speed: float = 0.06
    # Expressions kept per video (referring / reasoning / no-target, round robin).
    max_expressions: int = 6
    # JPEG quality of the written frames.
    jpeg_quality: int = 95


@dataclass
class DataConfig:
    """Where the training data comes from and how samples are built."""

    # synthetic | mevis | revos | refytvos | davis
    format: str = "synthetic"
    # Folder that holds meta_expressions.json (and mask_dict.json or Annotations/).
    root: str = "runs/data/synthetic"
    # Data set split to read (train | valid | valid_u | test ... as released).
    split: str = "train"
    # Training task of the built samples: ktg (keyframe target grounding),
    # aks (agentic keyframe selection A/B), veason (keyframe + boxes over sampled frames).
    task: str = "ktg"
    # Model input size [width, height]; frames and cues are resized to it (aspect ignored).
    input_size: list[int] = field(default_factory=lambda: [840, 840])
    # Veason-R1: frames sampled per video; keyframe drawn from the top-k largest-area frames.
    num_sampled_frames: int = 6
    # Veason-R1: the keyframe is drawn from this many largest-area frames.
    veason_keyframe_topk: int = 5
    # AKS: ratio of single- to multi-target samples (3:1 in RCoT-Seg).
    single_to_multi_ratio: float = 3.0
    # Built training samples (JSONL or parquet). Empty: <run_dir>/data/<task>.jsonl.
    samples_path: str = ""
    # Prompt templates: "full" (paper-style instructions) or "compact" (one line; tiny CPU models).
    prompt_style: str = "full"
    # Held-out fraction of videos used for validation prompts.
    val_fraction: float = 0.125
    # Cap on built samples (-1 = all).
    max_samples: int = -1
    # Seed of sample building (AKS negatives, Veason frame draws, negative points).
    seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


# ----------------------------------------------------------------------- rewards


@dataclass
class SegmenterConfig:
    """Keyframe segmenter used by mask-IoU reward terms and by evaluation."""

    # grabcut (CPU default, classical) | sam2 | oracle_box (fills the predicted box)
    backend: str = "grabcut"
    # SAM2 packaged config name, e.g. configs/sam2.1/sam2.1_hiera_t.yaml
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml"
    # SAM2 checkpoint; empty = random weights (meaningless masks, for tests).
    checkpoint: str = ""
    # SAM2 input resolution (1024 released; smaller for CPU tests).
    image_size: int = 1024
    # Device of the segmenter model (cpu | cuda).
    device: str = "cpu"
    # GrabCut iterations of the CPU default segmenter.
    grabcut_iterations: int = 3
    # GrabCut: radius (px) of the definite foreground/background disc drawn at each point.
    grabcut_point_radius: int = 2
    # SAM2: image embeddings kept in the LRU cache (one per keyframe of a GRPO group).
    embedding_cache_size: int = 8
    # SAM2: predict 3 candidate masks per prompt and keep the best-scored one.
    multimask_output: bool = True
    # SAM2: prompt sets decoded per batched mask-decoder call.
    decode_batch_size: int = 64


@dataclass
class RewardConfig:
    """The reward recipe, its parameters and the reward pool's fault handling."""

    # visionreasoner | segzero_strict | rcot_ktg | rcot_aks | videoseg_r1 | veason_r1 | dense_grounding
    name: str = "visionreasoner"
    # Seconds before a reward call is considered lost and retried.
    timeout_s: float = 120.0
    # Attempts after the first before a group is marked reward_failed (score 0).
    max_retries: int = 2
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    params: RewardParams = field(default_factory=RewardParams)


# ------------------------------------------------------------------------ models


@dataclass
class TinyModelConfig:
    """Tiny random Qwen2.5-VL built offline when ``model.path`` is empty."""

    # Text decoder hidden size.
    hidden_size: int = 64
    # Text decoder MLP size.
    intermediate_size: int = 128
    # Text decoder layers.
    num_hidden_layers: int = 2
    # Qwen2.5-VL derives head_dim = hidden_size / num_attention_heads; head_dim must equal
    # it (checked at build) and be >= 64 for vLLM on CPU.
    num_attention_heads: int = 1
    # Key/value heads (grouped-query attention).
    num_key_value_heads: int = 1
    # Attention head size (>= 64 for vLLM on CPU).
    head_dim: int = 64
    # Vision tower hidden size.
    vision_hidden_size: int = 32
    # Vision tower blocks.
    vision_depth: int = 2
    # Vision tower attention heads.
    vision_num_heads: int = 2
    # Byte-level BPE vocabulary trained offline (Qwen special tokens included).
    vocab_size: int = 1024
    # Seed of the random weights and of the tokenizer corpus.
    seed: int = 0


@dataclass
class LoraConfig:
    """LoRA adapters (peft) for the SFT cold start."""

    rank: int = 0  # 0 = full fine-tuning
    # LoRA scaling alpha.
    alpha: int = 16
    # LoRA dropout.
    dropout: float = 0.0
    # Module names that get LoRA adapters.
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class ModelConfig:
    """The policy checkpoint and how it is loaded."""

    # HF checkpoint dir (Qwen2.5-VL, processor included). Empty: the SFT output of the run,
    # or a tiny model built offline.
    path: str = ""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    # float32 | bfloat16 | float16
    dtype: str = "float32"
    # sdpa | eager | flash_attention_2
    attn_implementation: str = "sdpa"
    # Recompute activations in the backward pass (saves memory).
    gradient_checkpointing: bool = False
    # Qwen2-VL image processor pixel bounds (None: the processor's own).
    min_pixels: Optional[int] = None
    # Upper pixel bound of the image processor (None: the processor's own).
    max_pixels: Optional[int] = None


# ----------------------------------------------------------------------- rollout


@dataclass
class RolloutConfig:
    """Rollout generation (sampling parameters, engine, weight sync)."""

    # hf (transformers generate; CPU) | vllm
    backend: str = "hf"
    # Responses sampled per prompt (the GRPO group size).
    n: int = 8
    # Sampling temperature of training rollouts.
    temperature: float = 1.0
    # Nucleus sampling threshold (1.0 = off).
    top_p: float = 1.0
    # Top-k sampling (-1 = off).
    top_k: int = -1
    # Longest prompt in tokens (image tokens included).
    max_prompt_length: int = 3000
    # Longest response in tokens; longer ones are cut (finish_reason=length).
    max_response_length: int = 2000
    # Strings that end a response (kept in it).
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    # Prompts per generate call of the hf backend.
    micro_batch_size: int = 64
    # vLLM only.
    tensor_parallel_size: int = 1
    # vLLM: fraction of GPU memory the engine may use.
    gpu_memory_utilization: float = 0.6
    # vLLM: free the KV cache (sleep) while the actor trains on shared GPUs.
    enable_sleep: bool = True
    # vLLM: interpreter of the rollout actors ("" = the trainer's; "auto" = .venv-vllm/bin/python of `make setup-vllm`).
    vllm_python: str = ""
    # Weight sync actor -> rollout, bucket size in MB.
    weight_sync_bucket_mb: int = 256
    # Sampling for validation rollouts.
    val_temperature: float = 0.0
    # Responses per prompt in validation.
    val_n: int = 1


# ------------------------------------------------------------------------- actor


@dataclass
class OptimConfig:
    """AdamW optimizer and learning-rate schedule of the actor."""

    # AdamW learning rate.
    lr: float = 1e-6
    # AdamW weight decay.
    weight_decay: float = 0.01
    # AdamW betas.
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # constant | cosine
    lr_scheduler: str = "constant"
    # Fraction of the steps with linear warm-up.
    warmup_ratio: float = 0.0
    # Gradient-norm clipping threshold.
    grad_clip: float = 1.0


@dataclass
class FSDPConfig:
    """FSDP2 sharding and mixed precision of the policy workers."""

    # Mixed precision parameter / reduce dtypes (FSDP2 MixedPrecisionPolicy); "" = model dtype.
    param_dtype: str = ""
    # Gradient reduce dtype of the mixed-precision policy.
    reduce_dtype: str = "float32"
    # Free gathered parameters after each block's forward (ZeRO-3 style).
    reshard_after_forward: bool = True
    # Keep parameters and optimizer state in CPU memory (CPUOffloadPolicy).
    cpu_offload: bool = False


@dataclass
class ActorConfig:
    """GRPO policy update: batching, loss (verl core_algos), KL, optimizer."""

    # Prompts per optimizer step (x rollout.n responses).
    ppo_mini_batch_size: int = 16
    # Sequences per forward/backward on one worker.
    ppo_micro_batch_size_per_worker: int = 8
    # Passes over each GRPO batch (1 = on-policy).
    ppo_epochs: int = 1
    # Any policy loss registered in verl's core_algos (vanilla, gspo, clip_cov, ...).
    policy_loss: str = "vanilla"
    # PPO ratio clip below 1 (epsilon_low).
    clip_ratio_low: float = 0.2
    # PPO ratio clip above 1 (epsilon_high).
    clip_ratio_high: float = 0.2
    # Dual-clip constant for negative advantages.
    clip_ratio_c: float = 3.0
    # token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
    loss_agg_mode: str = "token-mean"
    # Add a KL-to-reference loss term (the reference group runs only when true and coef > 0).
    use_kl_loss: bool = True
    # KL loss coefficient beta (0.01 RCoT-Seg; 5e-3 Seg-Zero/Veason-R1).
    kl_loss_coef: float = 0.01
    # low_var_kl | kl | abs | mse | full (verl kl_penalty names)
    kl_loss_type: str = "low_var_kl"
    # Entropy bonus coefficient (1e-3 in Seg-Zero configs).
    entropy_coeff: float = 0.0
    optim: OptimConfig = field(default_factory=OptimConfig)
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)


@dataclass
class FilterGroupsConfig:
    """Dynamic sampling (DAPO): drop GRPO groups without learning signal and generate more.

    A group is dropped when its n values of ``metric`` are all equal (zero variance, so every
    advantage is 0) or when the group's mean ``metric`` lies outside ``[low, high]``. The step
    keeps drawing prompt batches and generating until ``trainer.train_batch_size`` groups are
    kept (the surplus of the last round is cut) or ``max_num_gen_batches`` rounds were used;
    then it trains on the kept groups (a warning when fewer), or skips the update when none.
    """

    # Turn dynamic sampling on (off: every generated group is trained on, as plain GRPO).
    enable: bool = False
    # Value compared within a group: "score" (the total reward) or a reward component name (e.g. accuracy).
    metric: str = "score"
    # Drop groups whose mean metric is below this (null = no lower bound).
    low: Optional[float] = None
    # Drop groups whose mean metric is above this (null = no upper bound).
    high: Optional[float] = None
    # Generation rounds (prompt batches) per step at most (0 = unlimited).
    max_num_gen_batches: int = 4


@dataclass
class AlgorithmConfig:
    """Advantage estimation and group filtering."""

    # Any advantage estimator registered in verl's core_algos (grpo, rloo, reinforce_plus_plus, ...).
    adv_estimator: str = "grpo"
    # Divide GRPO advantages by the group's std (false: Dr.GRPO style).
    norm_adv_by_std_in_grpo: bool = True
    # Dynamic sampling (DAPO): drop zero-variance / out-of-bounds groups and generate more prompts.
    filter_groups: FilterGroupsConfig = field(default_factory=FilterGroupsConfig)


# ---------------------------------------------------------------------- trainer


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
    total_steps: int = 200
    # Prompts per GRPO step (x rollout.n responses).
    train_batch_size: int = 16
    # Checkpoint every k steps (and at the end).
    save_freq: int = 25
    # Complete checkpoints kept (older ones are deleted; <= 0 keeps all).
    keep_last_checkpoints: int = 2
    # Validation every k steps (0 = never) and at the end.
    val_freq: int = 0
    # Held-out prompts per validation.
    val_num_prompts: int = 32
    # A fresh run (not a resumed one) validates the starting policy before step 1 and logs it at
    # step 0: the held-out prompts when val_freq > 0, the video evaluation when eval.freq > 0.
    val_before_train: bool = True
    # Only validate the starting policy (held-out prompts, and the video evaluation when
    # eval.freq > 0), log it and stop without training.
    val_only: bool = False
    # Sample table every k steps (0 = never).
    log_samples_freq: int = 25
    # Rows of the sample table.
    log_samples_count: int = 8
    # auto (latest checkpoint in run_dir if any) | never | path to a checkpoint dir
    resume: str = "auto"
    # Seed of the data order, sampling and workers.
    seed: int = 0
    # cpu | cuda
    device: str = "cpu"
    # Export an HF-format policy at the end of training.
    export_hf: bool = True


@dataclass
class TrackingConfig:
    """W&B tracking (metrics.jsonl is always written)."""

    # online | offline | disabled
    wandb_mode: str = "offline"
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
    # Epochs over the SFT samples (used when max_steps <= 0).
    epochs: float = 1.0
    # SFT optimizer steps (-1 = from epochs).
    max_steps: int = -1
    # SFT samples per optimizer step (global).
    batch_size: int = 32
    # SFT samples per forward/backward on one worker.
    micro_batch_size_per_worker: int = 16
    # SFT learning rate.
    lr: float = 1e-4
    # constant | cosine
    lr_scheduler: str = "cosine"
    # Fraction of the SFT steps with linear warm-up.
    warmup_ratio: float = 0.1
    # SFT AdamW weight decay.
    weight_decay: float = 0.0
    # SFT gradient-norm clipping threshold.
    grad_clip: float = 1.0
    lora: LoraConfig = field(default_factory=LoraConfig)
    # Print SFT metrics every k steps.
    log_freq: int = 25


@dataclass
class PoolConfig:
    """One role's placement: how many workers, what each bundle holds, on which nodes."""

    # Workers (Ray actors) of this role.
    num_workers: int = 1
    # CPUs of each worker's bundle.
    cpus_per_worker: float = 1.0
    # GPUs of each worker's bundle.
    gpus_per_worker: float = 0.0
    # Name of a resource pool shared by colocated roles ("" = own pool).
    colocate_with: str = ""
    # PACK | SPREAD | STRICT_PACK | STRICT_SPREAD
    strategy: str = "PACK"
    # Custom Ray node resource the bundles require (e.g. "node:worker1"), "" = any node.
    node_resource: str = ""


@dataclass
class ClusterConfig:
    """Resource layout: one placement pool per role (configs/cluster/*.yaml)."""

    # Name of the resource layout (configs/cluster/<name>.yaml).
    name: str = "local_cpu"
    # Ray address; "" starts a local Ray instance.
    address: str = ""
    # Nodes of the cluster.
    nodes: int = 1
    # GPUs per node (0 = CPU only).
    devices_per_node: int = 0
    # Reserve the whole job's bundles for Ray (CPU counts are soft on a laptop).
    num_cpus: Optional[int] = None
    # Logical CPUs per node for the dry run's simulated nodes and feasibility check
    # (null: num_cpus on a one-node cluster, otherwise CPUs are not checked).
    cpus_per_node: Optional[int] = None
    # Custom Ray resource carried by each node, in node order ("" = none, "a+b" = two), e.g.
    # [node_train, node_gen]: pools' node_resource pins land there (dry run, `ray start --resources`
    # in launch/slurm); empty: the pools' node_resource names go to nodes 0, 1, ... in order of use.
    node_resources: list[str] = field(default_factory=list)
    actor: PoolConfig = field(default_factory=PoolConfig)
    rollout: PoolConfig = field(default_factory=PoolConfig)
    reference: PoolConfig = field(default_factory=PoolConfig)
    reward: PoolConfig = field(default_factory=PoolConfig)
    evaluator: PoolConfig = field(default_factory=PoolConfig)


@dataclass
class EvalConfig:
    """Evaluation pipeline: frame sampler -> grounding -> keyframe segmenter -> propagation -> J&F."""

    # Policy checkpoint (HF folder) to evaluate; empty: no policy (GT cues and an MLLM-free sampler).
    checkpoint: str = ""
    # Evaluation data set folder; empty: data.root.
    dataset_root: str = ""
    # mevis | revos | refytvos | davis | synthetic; empty: data.format.
    dataset_format: str = ""
    # Split; empty: "valid" for synthetic (generated when absent), else the reader's default.
    dataset_split: str = ""
    # Output folder (masks <video>/<expression>/<frame>.png, per_expression.csv, summary.json); empty: <trainer.run_dir>/eval.
    out_dir: str = ""
    # Evaluate at most this many videos, in file order (-1 = all).
    max_videos: int = -1
    # Keyframe selection: hierarchical (VideoSeg-R1) | rcot | rcot_light (RCoT-Seg VDG/KFG/AKS) | veason (Veason-R1) | first_frame | oracle (largest GT area) | auto (hierarchical with a policy, else oracle).
    sampler: str = "auto"
    # Bidirectional propagation: flow (CPU default, optical flow) | sam2 (SAM2 video predictor of eval.segmenter) | xmem.
    propagator: str = "flow"
    # Ground with GT cues (box + inscribed-circle point of each object on the keyframe) instead of the policy.
    oracle_cues: bool = False
    # Keyframe segmenter; its SAM2 config/checkpoint/image_size/device also build the sam2 propagator.
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    # XMem weights (the released XMem.pth); empty: random weights (meaningless masks, tests and benchmarks only).
    xmem_checkpoint: str = ""
    # XMem: shorter frame side after resizing (480 released; <= 0 keeps the frame size).
    xmem_size: int = 480
    # Policy backend of the evaluation pipeline: "" (= rollout.backend) | hf | vllm. The evaluator runs in the trainer's environment: with the vLLM CPU environment (rollout.vllm_python) use hf.
    backend: str = ""
    # HF checkpoint answering the sampler questions (VideoSeg-R1's video MLLM); empty: the evaluated policy.
    sampler_model: str = ""
    # Size [W, H] of the frames shown in sampler questions (RCoT-Seg VDG/KFG: 448x448).
    sampler_frame_size: list[int] = field(default_factory=lambda: [448, 448])
    # Most frames shown in one sampler question, uniformly subsampled (0 = every frame).
    sampler_max_frames: int = 32
    # Sampling temperature of sampler questions (> 0 so that the K answers of HTFS differ).
    sampler_temperature: float = 0.7
    # Response token budget of one sampler question.
    sampler_max_tokens: int = 256
    # HTFS: interval answers K averaged into the key segment at each level.
    htfs_num_intervals: int = 5
    # HTFS: relative segment length threshold delta in (0, 1); recurse while T_key > delta * T.
    htfs_delta: float = 0.25
    # HTFS: most interval levels (a bound on top of the delta rule).
    htfs_max_levels: int = 6
    # HTFS: position answers sampled at the frame level.
    htfs_num_positions: int = 5
    # HTFS: the top-M position answers (highest sequence log-prob) averaged into p.
    htfs_top_m: int = 3
    # HTFS: most global reference frames (adaptive: one per htfs_reference_stride frames outside the key segment).
    htfs_max_reference_frames: int = 4
    # HTFS: frames outside the key segment per global reference frame.
    htfs_reference_stride: int = 16
    # Show the sampler's reference frames (before the keyframe) to the grounding policy.
    grounding_reference_frames: bool = False
    # RCoT-Seg AKS: most keyframe evaluations lambda (5 in the paper).
    aks_max_rounds: int = 5
    # RCoT-Seg light variant: uniformly sampled frames shown in re-selection questions.
    rcot_light_frames: int = 16
    # Veason-R1: segment from the answer's boxes (one pass, as Veason-R1 infers) instead of a KTG question.
    veason_use_answer_boxes: bool = True
    # Ask the KTG question in VideoSeg-R1's form (one negative point per object); answered negative points are used either way.
    negative_points: bool = False
    # Videos processed together (the MLLM questions of all their expressions are batched).
    videos_per_batch: int = 8
    # Processes scoring the predictions.
    score_workers: int = 1
    # Keyframe overlays (image, predicted and GT mask) returned by the evaluator actor for W&B.
    num_overlays: int = 4
    # Run the evaluator every k training steps (0 = never).
    freq: int = 0
    # tqdm progress bars.
    progress: bool = True
    # Seed of the sampler questions.
    seed: int = 0


@dataclass
class Config:
    """The whole run configuration."""

    # Name of the recipe the config was built from (set by `recipe=NAME`).
    recipe: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ------------------------------------------------------------------ validation

_CHOICES: dict[str, Sequence[str]] = {
    "data.format": ("synthetic", "mevis", "revos", "refytvos", "davis"),
    "data.task": ("ktg", "aks", "veason"),
    "data.prompt_style": ("full", "compact"),
    "data.synthetic.background": ("ramp", "noise", "plain"),
    "reward.segmenter.backend": ("grabcut", "sam2", "oracle_box"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "model.attn_implementation": ("sdpa", "eager", "flash_attention_2"),
    "rollout.backend": ("hf", "vllm"),
    "eval.backend": ("", "hf", "vllm"),
    "actor.loss_agg_mode": ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"),
    "actor.kl_loss_type": ("low_var_kl", "kl", "k1", "abs", "mse", "k2", "k3", "full"),
    "actor.optim.lr_scheduler": ("constant", "cosine"),
    "sft.lr_scheduler": ("constant", "cosine"),
    "tracking.wandb_mode": ("online", "offline", "disabled"),
    "trainer.device": ("cpu", "cuda"),
}


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def validate(cfg: Config) -> Config:
    """Check value ranges and choices that types alone cannot express."""
    for key, choices in _CHOICES.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"config key '{key}' = {value!r}; expected one of {list(choices)}")
    from rewards import REWARD_NAMES  # local import: rewards imports nothing from rl

    if cfg.reward.name not in REWARD_NAMES:
        raise ConfigError(f"config key 'reward.name' = {cfg.reward.name!r}; expected one of {list(REWARD_NAMES)}")
    if len(cfg.data.input_size) != 2 or min(cfg.data.input_size) <= 0:
        raise ConfigError(f"config key 'data.input_size' must be [width, height] > 0, got {cfg.data.input_size}")
    positive = ["rollout.n", "trainer.train_batch_size", "cluster.actor.num_workers", "actor.ppo_mini_batch_size",
                "actor.ppo_micro_batch_size_per_worker", "actor.ppo_epochs", "cluster.rollout.num_workers",
                "cluster.reward.num_workers"]
    for key in positive:
        if _get(cfg, key) <= 0:
            raise ConfigError(f"config key '{key}' must be > 0, got {_get(cfg, key)}")
    if cfg.trainer.train_batch_size % cfg.actor.ppo_mini_batch_size:
        raise ConfigError(
            "config key 'actor.ppo_mini_batch_size' must divide 'trainer.train_batch_size' "
            f"({cfg.actor.ppo_mini_batch_size} vs {cfg.trainer.train_batch_size})"
        )
    sequences = cfg.actor.ppo_mini_batch_size * cfg.rollout.n
    if sequences % cfg.cluster.actor.num_workers:
        raise ConfigError(
            "every actor rank needs the same number of sequences: actor.ppo_mini_batch_size x rollout.n "
            f"= {sequences} is not divisible by cluster.actor.num_workers = {cfg.cluster.actor.num_workers}"
        )
    _validate_filter_groups(cfg)
    return cfg


def _validate_filter_groups(cfg: Config) -> None:
    """``algorithm.filter_groups``: bounds in order, a round limit >= 0 and, when enabled, a metric
    the reward produces ("score" or one of its weighted components / its multiplier)."""
    fg = cfg.algorithm.filter_groups
    if fg.max_num_gen_batches < 0:
        raise ConfigError("config key 'algorithm.filter_groups.max_num_gen_batches' must be >= 0 (0 = unlimited), "
                          f"got {fg.max_num_gen_batches}")
    if fg.low is not None and fg.high is not None and fg.low > fg.high:
        raise ConfigError(f"config keys 'algorithm.filter_groups.low' = {fg.low} > "
                          f"'algorithm.filter_groups.high' = {fg.high}")
    if not fg.enable or fg.metric == "score":
        return
    from rewards.registry import build_params, get_reward

    try:
        reward = get_reward(cfg.reward.name)
    except KeyError:  # not registered here: the driver checks the metric at the first scored batch
        return
    names = list(reward.terms(build_params(cfg.reward.name, getattr(cfg.reward.params, cfg.reward.name))))
    names += [reward.multiplier] if reward.multiplier else []
    if fg.metric not in names:
        raise ConfigError(f"config key 'algorithm.filter_groups.metric' = {fg.metric!r}; reward "
                          f"{cfg.reward.name!r} has components {names} (or use \"score\", the total)")


# --------------------------------------------------------------------- loading


def _error_key(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    return str(key) if key else "?"


def _merge(base: DictConfig, other: Any, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        kind = "unknown config key" if "not in" in msg or "Key '" in msg and "not" in msg else "bad config value"
        raise ConfigError(f"{kind} '{_error_key(exc)}' in {source}: {msg}") from None


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return OmegaConf.load(path)


def named_yaml(kind: str, name: str) -> Path:
    """``configs/<kind>/<name>.yaml``, or ``name`` itself when it is a path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = CONFIG_DIR / kind / f"{name}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))
        raise ConfigError(f"unknown {kind[:-1] if kind.endswith('s') else kind} {name!r}; known: {known}")
    return candidate


def _recipe_chain(name: str) -> list[tuple[Path, DictConfig]]:
    """The recipe and the recipes it ``extends:`` (``extends: quickstart``), base first, so that a
    recipe's keys win over its base's."""
    chain: list[tuple[Path, DictConfig]] = []
    seen: list[str] = []
    while name:
        path = named_yaml("recipes", name)
        if str(path.resolve()) in seen:
            raise ConfigError(f"recipe {name!r} extends itself: {' -> '.join(seen + [str(path.resolve())])}")
        seen.append(str(path.resolve()))
        recipe_cfg = _read_yaml(path)
        base = recipe_cfg.pop("extends", "")
        if not isinstance(base, str):
            raise ConfigError(f"'extends' in {path} must name one recipe, got {base!r}")
        chain.append((path, recipe_cfg))
        name = base
    return chain[::-1]


def load_config(overrides: Sequence[str] = (), recipe: str | None = None) -> Config:
    """Resolve a :class:`Config` from defaults, a recipe, a cluster file and ``key=value`` overrides.

    ``overrides`` may contain ``recipe=NAME`` and ``cluster=NAME`` (names of files in
    ``configs/recipes`` / ``configs/cluster``, or YAML paths); every other item is a
    dotted ``key=value`` override.
    """
    cluster = None
    dotlist: list[str] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        if key == "recipe":
            recipe = value
        elif key == "cluster":
            cluster = value
        else:
            dotlist.append(f"{key}={value}")

    cfg = OmegaConf.structured(Config)
    OmegaConf.set_struct(cfg, True)
    if recipe:
        recipe_cluster = None
        for path, recipe_cfg in _recipe_chain(recipe):
            # A recipe names its default cluster file: `cluster: 1x8gpu` (the most derived one wins).
            if isinstance(recipe_cfg.get("cluster"), str):
                recipe_cluster = recipe_cfg.pop("cluster")
            cfg = _merge(cfg, recipe_cfg, str(path))
        cluster = cluster or recipe_cluster
        cfg.recipe = Path(recipe).stem
    if cluster:
        path = named_yaml("cluster", cluster)
        cfg = _merge(cfg, OmegaConf.create({"cluster": _read_yaml(path)}), str(path))
    try:
        cli = OmegaConf.from_dotlist(dotlist)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot parse overrides {dotlist}: {exc}") from None
    cfg = _merge(cfg, cli, "command line")
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"bad config value '{_error_key(exc)}': {str(exc).splitlines()[0]}") from None
    return validate(obj)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (for W&B config, checkpoints and printing)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def parse_cli(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split argv into ``key=value`` overrides and ``--flags``."""
    overrides = [a for a in argv if "=" in a and not a.startswith("--")]
    flags = [a for a in argv if a not in overrides]
    return overrides, flags


__all__ = [
    "Config", "ConfigError", "load_config", "validate", "to_dict", "to_yaml", "parse_cli", "named_yaml",
    "DataConfig", "SyntheticConfig", "RewardConfig", "SegmenterConfig", "ModelConfig", "TinyModelConfig",
    "LoraConfig", "RolloutConfig", "ActorConfig", "OptimConfig", "FSDPConfig", "AlgorithmConfig",
    "FilterGroupsConfig", "TrainerConfig", "TrackingConfig", "SFTConfig", "ClusterConfig", "PoolConfig", "MISSING",
]
