"""The jobs of ``python -m launch.annotate <job>``: name -> :class:`~data.annotate.job.AnnotationJob` class.

* ``difficulty``: :class:`~data.annotate.difficulty.DifficultyJob` (VideoSeg-R1 task difficulty);
* ``cot``: :class:`~data.annotate.cot.CotJob` (rejection-sampled teacher traces for CoT-SFT);
* ``generate``: :class:`~data.annotate.generate.GenerateJob` (n scored, rescorable responses).
"""

from __future__ import annotations

from typing import Any

from data.annotate.cot import CotJob
from data.annotate.difficulty import DifficultyJob
from data.annotate.generate import GenerateJob
from data.annotate.job import AnnotationJob

__all__ = ["JOBS", "build_job"]

JOBS: dict[str, type[AnnotationJob]] = {"difficulty": DifficultyJob, "cot": CotJob, "generate": GenerateJob}


def build_job(name: str, cfg: Any, model_name: str) -> AnnotationJob:
    """The job ``name`` for run config ``cfg`` (:class:`rl.config.Config`), answering with ``model_name``."""
    if name not in JOBS:
        raise ValueError(f"unknown annotate job {name!r}; expected one of {list(JOBS)}")
    return JOBS[name](cfg, model_name)
