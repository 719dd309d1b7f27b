"""The driver of ``launch.annotate``: plan the shards, run them on a Ray Data actor pool, merge.

Flow of :func:`run_job`::

    inputs -> plan_shards (streamed)           shards of annotate.shard_size records
    output folder: check_manifest              other settings' output -> OutputConflict
    shards not done -> ray.data.from_items(specs)
        .map_batches(ShardWorker, batch_size=1, concurrency=actors, num_cpus/num_gpus per actor)
        each actor: load model + job once; per shard: read, ask, write report + rows atomically
    all shards done -> merge rows in input order -> <job>.jsonl; summary.json; failures.jsonl

Ray Data restarts a killed actor and resubmits its shard (``max_restarts=-1``,
``max_task_retries=-1``, its defaults for actor pools); a redone shard is written whole or not
at all, so the output holds each record exactly once. A rerun after the driver was killed skips
the shards that are done. Memory stays flat in the number of records: the driver holds one spec
per shard, actors one shard, and the merge streams the shard files.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.annotate.shards import ShardSpec, check_manifest, is_done, plan_shards, shard_paths, write_atomic

log = logging.getLogger(__name__)

#: Skipped records named in summary.json (all are counted; each shard report names its own).
MAX_LISTED_SKIPS = 200

__all__ = ["JobPlan", "plan_job", "run_job", "merge_outputs", "format_plan", "format_summary"]


@dataclass
class JobPlan:
    """Everything a job run will do, before it does it (``--dry-run`` prints it)."""

    job: str
    inputs: list[str]
    output_dir: str
    output_file: str
    model_path: str
    backend: str
    device: str
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    shards: list[ShardSpec]
    done: list[int]
    settings: dict[str, Any] = field(default_factory=dict)
    tiny_model: bool = False

    @property
    def todo(self) -> list[ShardSpec]:
        done = set(self.done)
        return [s for s in self.shards if s.index not in done]

    @property
    def records(self) -> int:
        return sum(s.count for s in self.shards)


def _inputs(cfg: Any) -> list[str]:
    inputs = list(cfg.annotate.inputs) or ([cfg.data.samples_path] if cfg.data.samples_path else [])
    if not inputs:
        raise ValueError("annotate.inputs is empty and data.samples_path is not set: name the sample files "
                         "built by data.build, e.g. annotate.inputs=[runs/data/ktg.jsonl]")
    return inputs


def _model_path(cfg: Any, build: bool) -> str:
    path = cfg.annotate.model_path or cfg.model.path
    if path:
        return str(path)
    target = Path(cfg.trainer.run_dir) / "tiny_init"
    if not build:
        return str(target)
    from dataclasses import replace

    from rl.models.loading import ensure_policy
    from rl.run_setup import image_size

    return str(ensure_policy(replace(cfg.model, path=""), cfg.trainer.run_dir, image_size(cfg)))


def job_settings(cfg: Any, job: str, inputs: list[str], model: str) -> dict[str, Any]:
    """What the job's output depends on (stored in the output folder's manifest)."""
    from data.annotate.jobs import build_job

    a = cfg.annotate
    return {"job": job, "inputs": [str(Path(p).resolve()) for p in inputs], "model": model,
            "shard_size": a.shard_size, "batch_size": a.batch_size, "max_retries": a.max_retries,
            "retry_temperature": a.retry_temperature, "max_tokens": a.max_tokens, "top_p": a.top_p,
            "seed": a.seed, "splits": list(a.splits), "stop": list(cfg.rollout.stop),
            "backend": cfg.rollout.backend, "job_settings": build_job(job, cfg, model).settings()}


def plan_job(cfg: Any, job: str, build_model: bool = False) -> JobPlan:
    """Resolve inputs, output folder, model and actor pool; plan the shards (no Ray, no model load
    unless ``build_model`` builds the tiny default model)."""
    inputs = _inputs(cfg)
    out_dir = Path(cfg.annotate.output_dir or Path(cfg.trainer.run_dir) / "annotate" / job)
    model = _model_path(cfg, build_model)
    shards = plan_shards(inputs, cfg.annotate.shard_size)
    pool = cfg.cluster.rollout
    actors = cfg.annotate.num_actors or max(1, pool.num_workers)
    done = [s.index for s in shards if is_done(out_dir, s.index)]
    return JobPlan(job=job, inputs=inputs, output_dir=str(out_dir), output_file=str(out_dir / f"{job}.jsonl"),
                   model_path=model, backend=cfg.rollout.backend, device=cfg.trainer.device, actors=actors,
                   cpus_per_actor=pool.cpus_per_worker, gpus_per_actor=pool.gpus_per_worker, shards=shards, done=done,
                   settings=job_settings(cfg, job, inputs, model),
                   tiny_model=not (cfg.annotate.model_path or cfg.model.path))


def format_plan(plan: JobPlan) -> str:
    lines = [f"annotate {plan.job}: {plan.records} record(s) in {len(plan.shards)} shard(s) "
             f"({len(plan.done)} done, {len(plan.todo)} to do)"]
    for i, path in enumerate(plan.inputs):
        count = sum(s.count for s in plan.shards if s.input_index == i)
        lines.append(f"  input {i}: {path} ({count} records)")
    tiny = " (a tiny random model, built at start)" if plan.tiny_model else ""
    lines.append(f"  model: {plan.model_path}{tiny} on the {plan.backend} backend ({plan.device})")
    lines.append(f"  Ray Data actors: {plan.actors} x ({plan.cpus_per_actor:g} CPU, {plan.gpus_per_actor:g} GPU)")
    lines.append(f"  output: {plan.output_file} (shards in {Path(plan.output_dir) / 'shards'}), "
                 f"summary.json, failures.jsonl")
    return "\n".join(lines)


def _sum_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"records": 0, "annotated": 0, "done": 0, "passed": 0, "retried": 0, "rows": 0}
    failed, skipped = Counter(), Counter()
    for r in reports:
        for key in total:
            total[key] += int(r.get(key, 0))
        failed.update(r.get("failed", {}))
        skipped.update(r.get("skipped", {}))
    total["failed"], total["skipped"] = dict(sorted(failed.items())), dict(sorted(skipped.items()))
    return total


def merge_outputs(plan: JobPlan, cfg: Any) -> dict[str, Any]:
    """Concatenate every shard's rows in input order into ``<job>.jsonl`` (streamed, atomic), write
    ``failures.jsonl`` and ``summary.json``; returns the summary. The ``cot`` job's
    ``annotate.cot.keep_per_input`` caps apply here (first traces in input order are kept)."""
    out_dir = Path(plan.output_dir)
    missing = [s.index for s in plan.shards if not is_done(out_dir, s.index)]
    if missing:
        raise RuntimeError(f"cannot merge: {len(missing)} shard(s) not done (first: {missing[:5]})")
    caps = list(cfg.annotate.cot.keep_per_input) if plan.job == "cot" else []
    kept = Counter()
    dropped_by_cap = 0
    reports = []
    out_path = Path(plan.output_file)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    skips = []
    with open(tmp, "wb") as merged, open(out_dir / ".failures.jsonl.tmp", "wb") as fails:
        for spec in plan.shards:
            report_path, rows_path = shard_paths(out_dir, spec.index)
            report = json.loads(report_path.read_text())
            failures, shard_skips = report.pop("failures", []), report.pop("skips", [])
            reports.append(report)  # counts only: memory stays flat in the number of records
            skips.extend(shard_skips[:max(0, MAX_LISTED_SKIPS - len(skips))])
            for failure in failures:
                fails.write((json.dumps({**failure, "input": spec.path}, ensure_ascii=False) + "\n").encode())
            with open(rows_path, "rb") as rows:
                for line in rows:
                    if caps and b'"teacher_cot"' in line:
                        row = json.loads(line)
                        if row.get("teacher_cot") is not None:
                            cap = caps[spec.input_index] if spec.input_index < len(caps) else 0
                            if cap and kept[spec.input_index] >= cap:
                                row.pop("teacher_cot")
                                dropped_by_cap += 1
                                from data.partial import encode_record

                                line = encode_record(row)
                            else:
                                kept[spec.input_index] += 1
                    merged.write(line)
        merged.flush()
        os.fsync(merged.fileno())
    os.replace(tmp, out_path)
    os.replace(out_dir / ".failures.jsonl.tmp", out_dir / "failures.jsonl")
    summary = {"job": plan.job, "output": str(out_path), "model": plan.model_path, **_sum_reports(reports),
               "skipped_records": skips}
    if caps:
        summary["kept_per_input"] = [kept[i] for i in range(len(plan.inputs))]
        summary["dropped_by_keep_per_input"] = dropped_by_cap
    write_atomic(out_dir / "summary.json", (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    failed = ", ".join(f"{k} {v}" for k, v in summary["failed"].items()) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    lines = [f"annotate {summary['job']}: {summary['annotated']} record(s) asked, {summary['done']} done, "
             f"{summary['retried']} retried, failed: {failed}; skipped: {skipped}; "
             f"{summary['passed']} not annotated (other splits / tasks)",
             f"  output: {summary['output']} ({summary['rows']} rows); failures.jsonl and summary.json beside it"]
    for skip in summary.get("skipped_records", [])[:5]:
        lines.append(f"  skipped {skip['where']}: {skip['detail']}")
    if "kept_per_input" in summary:
        lines.append(f"  teacher traces kept per input: {summary['kept_per_input']} "
                     f"({summary['dropped_by_keep_per_input']} over annotate.cot.keep_per_input)")
    return "\n".join(lines)


def _remote_args(cfg: Any, plan: JobPlan) -> dict[str, Any]:
    args: dict[str, Any] = {"num_cpus": plan.cpus_per_actor}
    if plan.gpus_per_actor:
        args["num_gpus"] = plan.gpus_per_actor
    if cfg.rollout.backend == "vllm" and cfg.rollout.vllm_python:
        from rl.rollout.vllm_env import rollout_runtime_env

        args["runtime_env"] = rollout_runtime_env(cfg.rollout.vllm_python)
    return args


def _bound_worker(kwargs: dict[str, Any]) -> type:
    """:class:`ShardWorker` with its arguments bound in the class (pickled with it), so the actors have
    no constructor arguments in the object store and Ray can always restart a killed one."""
    from data.annotate.worker import ShardWorker

    class BoundShardWorker(ShardWorker):
        def __init__(self) -> None:
            super().__init__(**kwargs)

    return BoundShardWorker


def run_job(cfg: Any, job: str, progress: bool = True) -> dict[str, Any]:
    """Run ``job`` over the inputs (resuming a folder of the same settings); returns the summary."""
    from tqdm import tqdm

    plan = plan_job(cfg, job, build_model=True)
    check_manifest(plan.output_dir, plan.settings)
    todo = plan.todo
    log.info("%s", format_plan(plan))
    if todo:
        import ray

        from rl.run_setup import init_ray

        started = init_ray(cfg, check_placement=False)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # one bar of our own, in shards
        try:
            dataset = ray.data.from_items([s.as_row() for s in todo], override_num_blocks=len(todo))
            threads = max(1, int(plan.cpus_per_actor))
            kwargs = {"cfg": cfg, "job_name": job, "model_path": plan.model_path, "out_dir": plan.output_dir,
                      "device": plan.device, "torch_threads": threads}
            results = dataset.map_batches(_bound_worker(kwargs), batch_size=1,
                                          concurrency=min(plan.actors, len(todo)), **_remote_args(cfg, plan))
            bar = tqdm(total=len(todo), desc=f"annotate {job}", unit="shard", dynamic_ncols=True, disable=not progress)
            totals = Counter()
            for row in results.iter_rows():
                report = json.loads(row["report"])
                totals.update({"done": report["done"], "failed": sum(report["failed"].values())})
                bar.update(1)
                bar.set_postfix(done=totals["done"], failed=totals["failed"])
            bar.close()
        finally:
            if started:
                ray.shutdown()
    return merge_outputs(plan, cfg)
