"""One shard of an annotation job, start to finish, and the Ray Data actor that runs shards.

:func:`annotate_shard` reads the shard's records, skips those whose frames are missing or
corrupt, asks the model (batches of ``annotate.batch_size`` prompts, one seed per shard, attempt
and batch, so a shard redone after a crash gives the same answers), retries unparseable
answers up to ``annotate.max_retries`` times, and writes the report and then the rows
atomically. A shard whose rows file already exists is not redone (a restarted actor may get a
shard that finished just before the crash).

:class:`ShardWorker` is the callable class of ``Dataset.map_batches``: built once per actor
(loads the model and the job), called with a batch of shard specs, returns one summary row each.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

from data.annotate.job import AnnotationJob, Outcome, Request
from data.annotate.shards import ShardSpec, is_done, read_shard, shard_paths, write_atomic

log = logging.getLogger(__name__)

__all__ = ["annotate_shard", "frame_problem", "ShardWorker", "call_seed"]

#: Raw answers kept per failed sample in the report (each cut to MAX_RAW_CHARS).
MAX_RAW_ANSWERS = 4
MAX_RAW_CHARS = 2000


def frame_problem(record: dict[str, Any], base: Path) -> Optional[str]:
    """Why the record's images cannot be shown to a model (None: every one opens and decodes).

    Relative paths are taken from ``base`` (the input file's folder)."""
    from PIL import Image

    images = record.get("images")
    if not isinstance(images, list) or not images:
        return "no images"
    for raw in images:
        path = Path(str(raw))
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            return f"missing frame {path}"
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for a bad file
            return f"corrupt frame {path}: {type(exc).__name__}: {exc}"
    return None


def call_seed(seed: int, shard: int, attempt: int, batch: int) -> int:
    """Sampling seed of one generate call (stable across processes and reruns)."""
    return zlib.crc32(f"{seed}/{shard}/{attempt}/{batch}".encode()) & 0x7FFFFFFF


def _generate(backend: Any, requests: Sequence[Request], annotate: Any, stop: Sequence[str],
              seed: int) -> list[list[str]]:
    """Answers (decoded text) of ``requests`` that share ``n`` and ``temperature``."""
    from rl.rollout.base import SamplingParams

    first = requests[0]
    params = SamplingParams(n=first.n, temperature=first.temperature, top_p=annotate.top_p,
                            max_tokens=annotate.max_tokens, stop=list(stop), seed=seed, logprobs=False)
    out = backend.generate([r.prompt for r in requests], params)
    texts = out.texts
    return [texts[i * first.n:(i + 1) * first.n] for i in range(len(requests))]


def _raw(answers: Sequence[str]) -> list[str]:
    return [a[:MAX_RAW_CHARS] for a in list(answers)[:MAX_RAW_ANSWERS]]


def annotate_shard(spec: ShardSpec, job: AnnotationJob, backend: Any, annotate: Any, out_dir: str | os.PathLike,
                   stop: Sequence[str] = ()) -> dict[str, Any]:
    """Annotate one shard; returns its report (also written to ``shards/shard-<index>.json``).

    Report keys: ``shard``, ``records`` (read), ``annotated`` (asked), ``done``, ``passed``
    (records not asked: other splits, other tasks), ``failed`` / ``skipped`` (reason -> count),
    ``retried`` (records asked more than once), ``rows``, ``failures`` (``{"id", "reason", "raw"}``),
    ``skips`` (``{"where", "reason", "detail"}``), ``worker_pid`` (the process that did it).
    """
    report_path, rows_path = shard_paths(out_dir, spec.index)
    if is_done(out_dir, spec.index):
        return json.loads(report_path.read_text())
    records, skips = read_shard(spec)
    base = Path(spec.path).parent
    wanted = set(annotate.splits)
    outcomes: dict[int, Outcome] = {}
    pending: list[int] = []
    for i, record in enumerate(records):
        if (wanted and record.get("split") not in wanted) or not job.wants(record):
            continue
        problem = frame_problem(record, base)
        if problem:
            skips.append({"where": str(record.get("id")), "reason": "bad_frames", "detail": problem})
            outcomes[i] = Outcome("failed", reason="bad_frames")
            continue
        pending.append(i)
    asked = len(pending)
    retried: set[int] = set()
    for attempt in range(annotate.max_retries + 1):
        if not pending:
            break
        requests = {i: job.request(records[i], attempt) for i in pending}
        groups: dict[tuple[int, float], list[int]] = {}
        for i in pending:
            groups.setdefault((requests[i].n, requests[i].temperature), []).append(i)
        still: list[int] = []
        batch = 0
        for members in groups.values():
            for lo in range(0, len(members), annotate.batch_size):
                chunk = members[lo:lo + annotate.batch_size]
                answers = _generate(backend, [requests[i] for i in chunk], annotate, stop,
                                    call_seed(annotate.seed, spec.index, attempt, batch))
                batch += 1
                for i, texts in zip(chunk, answers):
                    outcome = job.judge(records[i], list(texts))
                    if outcome.status == "retry" and attempt < annotate.max_retries:
                        still.append(i)
                        retried.add(i)
                        outcomes[i] = outcome
                    elif outcome.status == "retry":
                        outcomes[i] = Outcome("failed", reason=outcome.reason or "unparseable", raw=list(texts))
                    else:
                        outcomes[i] = outcome
        pending = sorted(still)
    rows: list[dict[str, Any]] = []
    failed: Counter = Counter()
    failures = []
    done = 0
    for i, record in enumerate(records):
        outcome = outcomes.get(i)
        if outcome is not None and outcome.reason == "bad_frames":
            continue  # skipped: not written
        if outcome is None:
            if job.keeps_unannotated:
                rows.append(record)
            continue
        if outcome.status == "done":
            done += 1
        else:
            failed[outcome.reason] += 1
            failures.append({"id": record.get("id"), "reason": outcome.reason, "raw": _raw(outcome.raw)})
        rows.extend(job.rows(record, outcome))
    skipped = Counter(s["reason"] for s in skips)
    report = {"shard": spec.index, "input": spec.input_index, "records": len(records) + skipped["invalid_record"],
              "annotated": asked, "done": done, "passed": len(records) - asked - skipped["bad_frames"],
              "failed": dict(failed), "skipped": dict(skipped), "retried": len(retried), "rows": len(rows),
              "failures": failures, "skips": skips, "worker_pid": os.getpid()}
    write_atomic(report_path, (json.dumps(report, ensure_ascii=False) + "\n").encode())
    from data.partial import encode_record

    write_atomic(rows_path, b"".join(encode_record(row) for row in rows))
    return report


class ShardWorker:
    """Ray Data actor: one model and one job, any number of shards.

    Args: cfg: the run :class:`rl.config.Config`; job_name: a key of :data:`data.annotate.jobs.JOBS`;
    model_path: the answering checkpoint; out_dir: the job's output folder; device: ``cpu`` | ``cuda``.
    """

    def __init__(self, cfg: Any, job_name: str, model_path: str, out_dir: str, device: str = "cpu",
                 torch_threads: int = 1):
        import torch

        torch.set_num_threads(max(1, torch_threads))
        from data.annotate.jobs import build_job
        from rl.rollout import build_rollout_backend

        self.cfg, self.out_dir = cfg, out_dir
        self.backend = build_rollout_backend(cfg.rollout, model_path, device=device, dtype=cfg.model.dtype,
                                             attn_implementation=cfg.model.attn_implementation, seed=cfg.annotate.seed)
        self.job = build_job(job_name, cfg, model_path)
        self.stop = list(cfg.rollout.stop)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        keys = list(batch)
        specs = [ShardSpec.from_row({k: batch[k][i] for k in keys}) for i in range(len(batch[keys[0]]))]
        reports = [annotate_shard(s, self.job, self.backend, self.cfg.annotate, self.out_dir, self.stop) for s in specs]
        return {"report": [json.dumps({k: v for k, v in r.items() if k not in ("failures", "skips")}) for r in reports]}
