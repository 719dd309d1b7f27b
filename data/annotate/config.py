"""The ``annotate`` config section: offline jobs over built samples (``python -m launch.annotate``).

Plain dataclasses (no heavy imports); ``rl.config`` nests :class:`AnnotateConfig` as
``annotate.*``. The model answers through the rollout engine of ``rollout.backend``
(``rollout.tensor_parallel_size`` etc. apply), on Ray Data actors sized by
``cluster.rollout`` (workers, CPUs and GPUs per worker) unless ``annotate.num_actors`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Iterator

#: Offline jobs of ``launch.annotate`` (``data.annotate.jobs.JOBS``).
JOB_NAMES = ("difficulty", "cot", "generate")

#: VideoSeg-R1's five rating axes (names used as the JSON keys of the answer).
DEFAULT_AXES = ["scene_complexity", "segmentation_challenge", "temporal_ambiguity", "motion_complexity",
                "linguistic_ambiguity"]


@dataclass
class DifficultyJobConfig:
    """``difficulty``: an MLLM rates each sample 1-10 on every axis; D = their mean."""

    # Rating axes (JSON keys of the answer); VideoSeg-R1's five by default.
    axes: list[str] = field(default_factory=lambda: list(DEFAULT_AXES))
    # Rating prompt ("" = the built-in one); {query}, {axes} and {example} are filled in.
    prompt: str = ""
    # Sampling temperature of the first attempt (0 = greedy); retries use annotate.retry_temperature.
    temperature: Annotated[float, ">= 0"] = 0.0

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.axes:
            yield "axes", "needs at least one axis"
        if len(set(self.axes)) != len(self.axes):
            yield "axes", f"holds duplicates: {self.axes}"


@dataclass
class CotJobConfig:
    """``cot``: a teacher writes k traces per sample; the best one scoring >= threshold is kept."""

    # Traces sampled per sample.
    k: Annotated[int, ">= 1"] = 4
    # Sampling temperature of the traces.
    temperature: Annotated[float, ">= 0"] = 1.0
    # Show the teacher the ground-truth cues as hints (the papers' setup).
    hints: bool = True
    # Keep the best trace when its score is >= threshold x the reward's maximum score (rejection
    # sampling; 0 keeps every sample's best parseable trace).
    threshold: Annotated[float, ">= 0, <= 1"] = 0.5
    # Reward that scores the traces ("" = each sample's own "reward" field, the task's reward).
    reward: str = ""
    # Kept traces per input file, in input order (0 = all that pass); e.g. [20000, 8000] for
    # RCoT-Seg's KTG + AKS inputs. Empty: keep all.
    keep_per_input: Annotated[list[int], ">= 0"] = field(default_factory=list)


@dataclass
class GenerateJobConfig:
    """``generate``: n responses per sample, scored by a registered reward (rescorable)."""

    # Responses per sample.
    n: Annotated[int, ">= 1"] = 1
    # Sampling temperature (0 = greedy).
    temperature: Annotated[float, ">= 0"] = 0.0
    # Reward that scores the responses ("" = each sample's own "reward" field).
    reward: str = ""


@dataclass
class AnnotateConfig:
    """Offline annotation jobs on Ray Data (``python -m launch.annotate <job>``)."""

    # Built sample files (JSONL / parquet of data.build); empty: [data.samples_path].
    inputs: list[str] = field(default_factory=list)
    # Output folder ("" = <trainer.run_dir>/annotate/<job>); shards, the merged file and summary go here.
    output_dir: str = ""
    # Model that answers ("" = model.path; a tiny model is built offline when both are empty).
    model_path: str = ""
    # Ray Data actors (0 = cluster.rollout.num_workers).
    num_actors: Annotated[int, ">= 0"] = 0
    # Samples per output shard (one Ray Data batch; the unit of resume).
    shard_size: Annotated[int, ">= 1"] = 32
    # Prompts per generate call inside a shard.
    batch_size: Annotated[int, ">= 1"] = 8
    # Extra attempts for a sample whose answer does not parse (then it is recorded as failed).
    max_retries: Annotated[int, ">= 0"] = 2
    # Sampling temperature of retries (a greedy first attempt would repeat itself).
    retry_temperature: Annotated[float, ">= 0"] = 1.0
    # Longest answer in tokens.
    max_tokens: Annotated[int, ">= 1"] = 512
    # Top-p of every call.
    top_p: Annotated[float, "> 0, <= 1"] = 1.0
    # Sampling seed (each shard and attempt derives its own from it).
    seed: Annotated[int, ">= 0"] = 0
    # Splits annotated (empty: every record).
    splits: list[str] = field(default_factory=list)
    difficulty: DifficultyJobConfig = field(default_factory=DifficultyJobConfig)
    cot: CotJobConfig = field(default_factory=CotJobConfig)
    generate: GenerateJobConfig = field(default_factory=GenerateJobConfig)
