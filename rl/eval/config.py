"""The ``eval`` config section: video evaluation (sampler -> grounding -> segmenter -> propagation -> J&F).

Imports nothing heavy: ``rl.config`` nests :class:`EvalConfig`, the evaluation pipeline
reads it. The sampler names are the list :mod:`rl.eval.samplers` builds from; the
propagator names come from :mod:`rewards.vision.factory`. ``Literal`` fields list their
choices and ``Annotated[T, "<bound>"]`` states a range (checked at start-up; see
:mod:`rl.schema`). Whether configured checkpoint files exist is checked by the launchers
(:mod:`rl.preflight`), not here: a submitted config names files of the cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Iterator, Literal

from data.config import DATASET_FORMATS
from rewards.vision.config import SegmenterConfig
from rewards.vision.factory import PROPAGATOR_NAMES

#: Keyframe samplers (:func:`rl.eval.samplers.build_sampler`).
SAMPLERS = ("hierarchical", "rcot", "rcot_light", "veason", "first_frame", "oracle")
#: The samplers that ask the MLLM questions.
MLLM_SAMPLERS = ("hierarchical", "rcot", "rcot_light", "veason")
#: ``eval.sampler`` values: a sampler, or ``auto`` (hierarchical with a policy, else oracle).
EVAL_SAMPLERS = SAMPLERS + ("auto",)
#: ``eval.dataset_format`` values ("" = data.format).
EVAL_DATASET_FORMATS = ("",) + DATASET_FORMATS
#: ``eval.backend`` values ("" = rollout.backend).
EVAL_BACKENDS = ("", "hf", "vllm")
#: Names an extra evaluation set may not take: the sub-keys of the main set's metrics (``val/referring/J&F``, ...).
RESERVED_SET_NAMES = ("referring", "reasoning", "multi_target", "single_target", "diagnostics", "timing_s",
                      "overlays", "score", "reward", "diversity", "response_length")
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class EvalDatasetConfig:
    """One extra evaluation set (an item of ``eval.datasets``), evaluated after the main one."""

    # Name in its metric keys (val/<name>/J&F, val/<name>/J, ...) and output folder (<eval.out_dir>/<name>/step_<k>): letters, digits, '_', '-', '.'.
    name: str = ""
    # Data set folder; empty: the main set's (eval.dataset_root, else data.root).
    dataset_root: str = ""
    # mevis | revos | refytvos | davis | synthetic; empty: the main set's (eval.dataset_format, else data.format).
    dataset_format: Literal[EVAL_DATASET_FORMATS] = ""
    # Split; empty: "valid" for synthetic, else the reader's default.
    dataset_split: str = ""
    # Evaluate at most this many videos, in file order (-1 = all).
    max_videos: Annotated[int, "== -1 or >= 1"] = -1

    def validate(self) -> Iterator[tuple[str, str]]:
        if not _SET_NAME.match(self.name):
            yield "name", (f"must be a non-empty name of letters, digits, '_', '-', '.' (used in metric keys and "
                           f"folder names), got {self.name!r}")
        elif self.name in RESERVED_SET_NAMES or self.name.startswith("step_"):
            yield "name", f"{self.name!r} is reserved (metric keys of the main set, step folders); pick another name"


@dataclass
class EvalConfig:
    """Evaluation pipeline: frame sampler -> grounding -> keyframe segmenter -> propagation -> J&F."""

    # Policy checkpoint (HF folder) to evaluate; empty: no policy (GT cues and an MLLM-free sampler).
    checkpoint: str = ""
    # Evaluation data set folder; empty: data.root.
    dataset_root: str = ""
    # mevis | revos | refytvos | davis | synthetic; empty: data.format.
    dataset_format: Literal[EVAL_DATASET_FORMATS] = ""
    # Split; empty: "valid" for synthetic (generated when absent), else the reader's default.
    dataset_split: str = ""
    # Output folder (masks <video>/<expression>/<frame>.png, per_expression.csv, summary.json); empty: <trainer.run_dir>/eval.
    out_dir: str = ""
    # Evaluate at most this many videos, in file order (-1 = all).
    max_videos: Annotated[int, "== -1 or >= 1"] = -1
    # Extra evaluation sets (verl's data.val_files as a list), each {name, dataset_root, dataset_format, dataset_split, max_videos}, evaluated after the main set above with the same policy and pipeline; metrics val/<name>/J&F, ...; empty: only the main set (val/J&F, ...).
    datasets: list[EvalDatasetConfig] = field(default_factory=list)
    # Keyframe selection: hierarchical (VideoSeg-R1) | rcot | rcot_light (RCoT-Seg VDG/KFG/AKS) | veason (Veason-R1) | first_frame | oracle (largest GT area) | auto (hierarchical with a policy, else oracle).
    sampler: Literal[EVAL_SAMPLERS] = "auto"
    # Bidirectional propagation: flow (CPU default, optical flow) | sam2 (SAM2 video predictor of eval.segmenter) | xmem.
    propagator: Literal[PROPAGATOR_NAMES] = "flow"
    # Ground with GT cues (box + inscribed-circle point of each object on the keyframe) instead of the policy.
    oracle_cues: bool = False
    # Keyframe segmenter; its SAM2 config/checkpoint/image_size/device also build the sam2 propagator.
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    # XMem weights (the released XMem.pth); empty: random weights (meaningless masks, tests and benchmarks only).
    xmem_checkpoint: str = ""
    # XMem: shorter frame side after resizing (480 released; <= 0 keeps the frame size).
    xmem_size: int = 480
    # Policy backend of the evaluation pipeline: "" (= rollout.backend) | hf | vllm. The evaluator runs in the trainer's environment: with the vLLM CPU environment (rollout.vllm_python) use hf.
    backend: Literal[EVAL_BACKENDS] = ""
    # HF checkpoint answering the sampler questions (VideoSeg-R1's video MLLM); empty: the evaluated policy.
    sampler_model: str = ""
    # Size [W, H] of the frames shown in sampler questions (RCoT-Seg VDG/KFG: 448x448).
    sampler_frame_size: Annotated[list[int], "len == 2", "> 0"] = field(default_factory=lambda: [448, 448])
    # Most frames shown in one sampler question, uniformly subsampled (0 = every frame).
    sampler_max_frames: Annotated[int, ">= 0"] = 32
    # Sampling temperature of sampler questions (> 0 so that the K answers of HTFS differ).
    sampler_temperature: Annotated[float, ">= 0"] = 0.7
    # Response token budget of one sampler question.
    sampler_max_tokens: Annotated[int, ">= 1"] = 256
    # HTFS: interval answers K averaged into the key segment at each level.
    htfs_num_intervals: Annotated[int, ">= 1"] = 5
    # HTFS: relative segment length threshold delta in (0, 1); recurse while T_key > delta * T.
    htfs_delta: Annotated[float, "> 0, < 1"] = 0.25
    # HTFS: most interval levels (a bound on top of the delta rule).
    htfs_max_levels: Annotated[int, ">= 1"] = 6
    # HTFS: position answers sampled at the frame level.
    htfs_num_positions: Annotated[int, ">= 1"] = 5
    # HTFS: the top-M position answers (highest sequence log-prob) averaged into p.
    htfs_top_m: Annotated[int, ">= 1"] = 3
    # HTFS: most global reference frames (adaptive: one per htfs_reference_stride frames outside the key segment).
    htfs_max_reference_frames: Annotated[int, ">= 0"] = 4
    # HTFS: frames outside the key segment per global reference frame.
    htfs_reference_stride: Annotated[int, ">= 1"] = 16
    # Show the sampler's reference frames (before the keyframe) to the grounding policy.
    grounding_reference_frames: bool = False
    # RCoT-Seg AKS: most keyframe evaluations lambda (5 in the paper).
    aks_max_rounds: Annotated[int, ">= 0"] = 5
    # RCoT-Seg light variant: uniformly sampled frames shown in re-selection questions.
    rcot_light_frames: Annotated[int, ">= 1"] = 16
    # Veason-R1: segment from the answer's boxes (one pass, as Veason-R1 infers) instead of a KTG question.
    veason_use_answer_boxes: bool = True
    # Ask the KTG question in VideoSeg-R1's form (one negative point per object); answered negative points are used either way.
    negative_points: bool = False
    # Videos processed together (the MLLM questions of all their expressions are batched).
    videos_per_batch: Annotated[int, ">= 1"] = 8
    # Processes scoring the predictions.
    score_workers: Annotated[int, ">= 1"] = 1
    # Keyframe overlays (image, predicted and GT mask) returned by the evaluator actor for W&B.
    num_overlays: Annotated[int, ">= 0"] = 4
    # Run the evaluator every k training steps (0 = never).
    freq: Annotated[int, ">= 0"] = 0
    # tqdm progress bars.
    progress: bool = True
    # Seed of the sampler questions.
    seed: Annotated[int, ">= 0"] = 0

    def validate(self) -> Iterator[tuple[str, str]]:
        names = [d.name for d in self.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            yield "datasets", f"names must differ, {repeated} repeat"
