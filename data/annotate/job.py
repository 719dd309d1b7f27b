"""What an offline annotation job is: prompts for a sample, and a verdict on the model's answers.

The engine (:mod:`data.annotate.runner`) owns everything else: reading shards, checking
frames, batching, seeds, retries, writing. A job only says, for one sample record
(schema: :mod:`data.samples`):

* :meth:`AnnotationJob.request`: the prompt record (``{"prompt", "images", "system"?}``, the
  rollout backends' input) and how many answers to sample at which temperature, given the
  attempt number (0 first, then 1..``annotate.max_retries`` after unparseable answers);
* :meth:`AnnotationJob.judge`: an :class:`Outcome` for the answers: ``done`` with the new
  fields, ``retry`` (nothing usable parsed; the engine asks again while attempts remain, then
  records the sample as failed with reason ``unparseable`` and the raw answers), or
  ``failed`` with a reason (no retry, e.g. every trace scored under the threshold);
* :meth:`AnnotationJob.rows`: the output rows of the sample (default: the sample with the new
  fields merged in; unchanged when it failed). ``generate`` writes one row per response.

:meth:`AnnotationJob.settings` lists what changes the output; the engine stores it with the
output folder and refuses to mix outputs made with other settings.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Request", "Outcome", "AnnotationJob", "STATUSES"]

STATUSES = ("done", "retry", "failed")


@dataclass
class Request:
    """One generate call for one sample: ``n`` answers to ``prompt`` at ``temperature``."""

    prompt: dict[str, Any]
    n: int = 1
    temperature: float = 0.0


@dataclass
class Outcome:
    """The verdict on one sample's answers.

    status: ``done`` | ``retry`` | ``failed``; fields: new record fields (``done``);
    reason: why it failed or needs a retry (short, stable: it is counted by reason);
    raw: the answers it was judged on (kept with failures).
    """

    status: Literal["done", "retry", "failed"]
    fields: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    raw: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Outcome.status must be one of {STATUSES}, got {self.status!r}")


class AnnotationJob(abc.ABC):
    """Base class of the jobs of ``launch.annotate`` (registered in :data:`data.annotate.jobs.JOBS`).

    Built once per Ray Data actor as ``JobClass(cfg, model_name)``: ``cfg`` is the whole run
    :class:`rl.config.Config` (the job reads ``cfg.annotate.<job>`` and, for scoring, ``cfg.reward``),
    ``model_name`` names the answering checkpoint (recorded in the output).
    """

    #: The job's name on the command line.
    name: str = ""
    #: Whether records the job does not annotate (other splits, :meth:`wants` False) are written
    #: to the output unchanged (jobs that add fields) or left out (``generate``: rows are responses).
    keeps_unannotated: bool = True

    def __init__(self, cfg: Any, model_name: str):
        self.cfg = cfg
        self.model_name = model_name

    def settings(self) -> dict[str, Any]:
        """JSON-able settings that change this job's output (besides the engine's own)."""
        from dataclasses import asdict

        return {self.name: asdict(getattr(self.cfg.annotate, self.name))}

    def wants(self, sample: dict[str, Any]) -> bool:
        """Whether this job annotates ``sample`` (others pass through unchanged)."""
        return True

    @abc.abstractmethod
    def request(self, sample: dict[str, Any], attempt: int) -> Request:
        """The generate call for ``sample`` at ``attempt`` (0 = first)."""

    @abc.abstractmethod
    def judge(self, sample: dict[str, Any], answers: list[str]) -> Outcome:
        """Verdict on the ``request(...).n`` answers (decoded text, in sampling order)."""

    def rows(self, sample: dict[str, Any], outcome: Outcome) -> list[dict[str, Any]]:
        """Output rows of ``sample``: the record with ``outcome.fields`` merged in (``done``), else unchanged."""
        if outcome.status == "done":
            return [{**sample, **outcome.fields}]
        return [sample]
