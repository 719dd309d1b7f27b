"""Settings of the data package: the ``data`` config section and its ``data.synthetic`` part.

Plain dataclasses with no imports from the training engine: ``rl.config`` nests
them in the run configuration, and :mod:`data.synthetic` / :mod:`data.build` read them
directly. Choice fields are ``Literal``; ``Annotated[T, "<bound>"]`` states a field's
range (checked at start-up by ``rl.schema``, the language is described there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

#: Data set formats with a reader (``data.readers.READERS``); ``synthetic`` is written by ``data.synthetic``.
DATASET_FORMATS = ("synthetic", "mevis", "revos", "refytvos", "davis")
#: Training tasks of the built samples (``data.samples``).
TASKS = ("ktg", "aks", "veason")
#: Prompt templates (``data.prompts``).
PROMPT_STYLES = ("full", "compact")
#: Backgrounds of the synthetic videos.
BACKGROUNDS = ("ramp", "noise", "plain")


@dataclass
class SyntheticConfig:
    """Procedural synthetic videos written in the MeViS/ReVOS on-disk format."""

    # Number of generated videos (split into train/val by data.val_fraction).
    num_videos: Annotated[int, ">= 1"] = 32
    # Frames per video.
    num_frames: Annotated[int, ">= 1"] = 8
    # Frame height in pixels.
    height: Annotated[int, ">= 1"] = 112
    # Frame width in pixels.
    width: Annotated[int, ">= 1"] = 112
    # Most shapes drawn in one video.
    max_objects: Annotated[int, ">= 1"] = 3
    # Generator seed: the same seed writes byte-identical data sets.
    seed: Annotated[int, ">= 0"] = 0
    # "ramp": background colour channels ramp with x and y (gives a position
    # signal that Qwen2.5-VL's vision tower, lacking absolute position
    # embeddings, can learn from); "noise": textured noise; "plain".
    background: Literal[BACKGROUNDS] = "ramp"
    # Per-pixel Gaussian noise (0..255 scale) added to the background.
    noise_std: Annotated[float, ">= 0"] = 6.0
    # Every expression's target (union of its objects) covers at least this
    # fraction of the frame on at least one frame.
    min_target_area: Annotated[float, "> 0, < 1"] = 0.02
    # Largest shape extent (diameter) as a fraction of the shorter frame side.
    max_object_size: Annotated[float, "> 0, <= 1"] = 0.35
    # Fastest speed of an object staying in view, fraction of the frame side per frame.
    max_speed: Annotated[float, ">= 0"] = 0.06
    # Expressions kept per video (referring / reasoning / no-target, round robin).
    max_expressions: Annotated[int, ">= 1"] = 6
    # JPEG quality of the written frames.
    jpeg_quality: Annotated[int, ">= 1, <= 100"] = 95


@dataclass
class DataConfig:
    """Where the training data comes from and how samples are built."""

    # synthetic | mevis | revos | refytvos | davis
    format: Literal[DATASET_FORMATS] = "synthetic"
    # Folder that holds meta_expressions.json (and mask_dict.json or Annotations/).
    root: str = "runs/data/synthetic"
    # Data set split to read (train | valid | valid_u | test ... as released).
    split: str = "train"
    # Training task of the built samples: ktg (keyframe target grounding),
    # aks (agentic keyframe selection A/B), veason (keyframe + boxes over sampled frames).
    task: Literal[TASKS] = "ktg"
    # Model input size [width, height]; frames and cues are resized to it (aspect ignored).
    input_size: Annotated[list[int], "len == 2", "> 0"] = field(default_factory=lambda: [840, 840])
    # Veason-R1: frames sampled per video; keyframe drawn from the top-k largest-area frames.
    num_sampled_frames: Annotated[int, ">= 1"] = 6
    # Veason-R1: the keyframe is drawn from this many largest-area frames.
    veason_keyframe_topk: Annotated[int, ">= 1"] = 5
    # AKS: ratio of single- to multi-target samples (3:1 in RCoT-Seg).
    single_to_multi_ratio: Annotated[float, ">= 0"] = 3.0
    # Built training samples (JSONL or parquet). Empty: <run_dir>/data/<task>.jsonl.
    samples_path: str = ""
    # Prompt templates: "full" (paper-style instructions) or "compact" (one line; tiny CPU models).
    prompt_style: Literal[PROMPT_STYLES] = "full"
    # Held-out fraction of videos used for validation prompts.
    val_fraction: Annotated[float, ">= 0, < 1"] = 0.125
    # Cap on built samples (-1 = all).
    max_samples: Annotated[int, "== -1 or >= 1"] = -1
    # Seed of sample building (AKS negatives, Veason frame draws, negative points).
    seed: Annotated[int, ">= 0"] = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
