"""The evaluator: Ray actors that run the whole evaluation pipeline on their own resources.

Placement comes from the cluster config's ``evaluator`` pool (``cluster.evaluator``:
workers, CPUs / GPUs per worker) through :class:`rl.placement.PlacementPlan`: pass the
driver's plan (built with an ``"evaluator"`` role) or let :class:`Evaluator` make its own.
With several workers the videos are split between them (worker ``i`` takes every
``n``-th video), each writes its masks to the shared output folder, and worker 0 scores.

Driver use (every ``eval.freq`` steps)::

    evaluator = Evaluator(cfg, plan)        # once, after plan.create(); plan roles include "evaluator"
    ...
    if cfg.eval.freq and step % cfg.eval.freq == 0:
        export_dir = actor_group.export_hf(f"{run_dir}/eval_export")      # rl.workers.policy_group.PolicyGroup
        result = evaluator.evaluate(checkpoint_dir=export_dir, step=step)   # or .submit(...) / .result()
        metrics.update(result["metrics"])   # val/J, val/F, val/J&F (+ ReVOS splits, R, diagnostics, timing)
        result["overlays"]                  # keyframes + predicted / GT masks (rl.eval.overlays), for W&B
        for extra in cfg.eval.datasets:     # the extra sets, with the policy already loaded
            metrics.update(evaluator.evaluate(step=step, dataset=extra.name)["metrics"])   # val/<name>/J&F, ...
    evaluator.shutdown()                    # at the end

Standalone: ``Evaluator(cfg).evaluate(checkpoint_dir=PATH)`` (starts its own placement group;
Ray must be initialised), or :class:`EvalWorker` directly in-process without Ray.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from rl.config import Config
from rl.placement import PlacementPlan
from rl.workers.group import WorkerGroup, bundle_options
from rl.eval.datasets import eval_set_config
from rl.eval.pipeline import EvalPipeline, PredictReport, resolve_dataset, select_videos

log = logging.getLogger(__name__)

__all__ = ["EvalWorker", "Evaluator", "PendingEvaluation", "summary_metrics", "package_result", "select_videos",
           "metric_prefix"]

METRIC_PREFIX = "val/"


def metric_prefix(dataset: Optional[str] = None) -> str:
    """``val/`` for the main evaluation set, ``val/<name>/`` for the extra set ``name`` of ``eval.datasets``."""
    return METRIC_PREFIX if dataset is None else f"{METRIC_PREFIX}{dataset}/"


def summary_metrics(summary: Mapping[str, Any], prefix: str = METRIC_PREFIX) -> dict[str, float]:
    """Flat scalar metrics of a pipeline summary: ``val/J``, ``val/F``, ``val/J&F`` (x100) and its standard
    error ``val/J&F_stderr``, ``val/R``, ReVOS ``val/referring/J&F`` / ``val/reasoning/J&F``,
    ``val/multi_target/J&F`` / ``val/single_target/J&F`` (> 1 / exactly 1 GT object), ``val/num_videos``,
    diagnostics and ``val/timing_s/<stage>``. Values that are None (nothing to average) are left out."""
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out[prefix + key] = float(value)

    for key in ("J", "F", "J&F", "J&F_stderr", "R"):
        put(key, summary.get(key))
    for split in ("referring", "reasoning", "multi_target", "single_target"):
        block = summary.get(split) or {}
        for key in ("J", "F", "J&F"):
            put(f"{split}/{key}", block.get(key))
    put("num_expressions", summary.get("num_expressions"))
    put("num_videos", summary.get("num_videos"))
    diag = summary.get("diagnostics") or {}
    for key in ("keyframe_area_ratio", "aks_rounds", "box_iou_before_segmentation", "htfs_levels"):
        put(f"diagnostics/{key}", diag.get(key))
    for stage, seconds in (summary.get("timing_s") or {}).items():
        put(f"timing_s/{stage}", seconds)
    put("skipped_videos", (summary.get("skipped_videos") or {}).get("count"))
    return out


def _named_tensors(weights: Any) -> Iterable[tuple[str, Any]]:
    return weights.items() if isinstance(weights, Mapping) else weights


class EvalWorker:
    """Runs the pipeline (inside a Ray actor, or in-process).

    Args:
        cfg: the run config; model_path: initial policy (HF folder) or None;
        torch_threads: torch CPU threads of this worker.

    The segmenter and propagator are built once and kept; the policy is reloaded from
    ``checkpoint_dir`` on every call that passes one (the driver may re-export to the
    same folder), or updated in place from ``weights``.
    """

    def __init__(self, cfg: Config, model_path: Optional[str] = None, torch_threads: int = 1):
        import torch

        torch.set_num_threads(max(1, int(torch_threads)))
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(torch_threads))))
        self.cfg = cfg
        self.model_path = model_path or cfg.eval.checkpoint or None
        self.pipeline: Optional[EvalPipeline] = None

    def ping(self) -> bool:
        return True

    def _prepare(self, checkpoint_dir: Optional[str], weights: Any) -> EvalPipeline:
        if checkpoint_dir is not None or self.pipeline is None:
            reuse = {}
            if self.pipeline is not None:
                reuse = {"segmenter": self.pipeline.segmenter, "propagator": self.pipeline.propagator}
                self.pipeline.close()
            if checkpoint_dir is not None:
                self.model_path = str(checkpoint_dir)
            self.pipeline = EvalPipeline(self.cfg, self.model_path, **reuse)
        if weights is not None:
            count = self.pipeline.update_weights(_named_tensors(weights))
            log.info("evaluator: loaded %d tensors", count)
        return self.pipeline

    def output_dir(self, step: Optional[int] = None, dataset: Optional[str] = None) -> str:
        return output_dir(eval_set_config(self.cfg, dataset), step)

    def predict(self, out_dir: str, shard: int = 0, num_shards: int = 1, checkpoint_dir: Optional[str] = None,
                weights: Any = None, max_videos: Optional[int] = None, dataset: Optional[str] = None) -> PredictReport:
        """Predict every ``num_shards``-th video starting at ``shard`` into ``out_dir`` (``dataset``: an
        extra set of ``eval.datasets`` by name; None: the main set)."""
        from data.readers import open_dataset

        pipeline = self._prepare(checkpoint_dir, weights)
        cfg = eval_set_config(self.cfg, dataset)
        root, fmt, split = resolve_dataset(cfg)
        reader = open_dataset(root, fmt, split)
        limit = cfg.eval.max_videos if max_videos is None else max_videos
        ids = select_videos(reader.video_ids(), limit, f"{root} ({fmt}, split {split or 'default'})", warn=shard == 0)
        return pipeline.predict(reader, ids[shard::num_shards], out_dir)

    def score(self, report: PredictReport, out_dir: str, dataset: Optional[str] = None) -> dict[str, Any]:
        root, fmt, split = resolve_dataset(eval_set_config(self.cfg, dataset))
        pipeline = self._prepare(None, None)
        return pipeline.score(report, root, fmt, split, out_dir)

    def evaluate(self, checkpoint_dir: Optional[str] = None, weights: Any = None, step: Optional[int] = None,
                 out_dir: Optional[str] = None, max_videos: Optional[int] = None,
                 dataset: Optional[str] = None) -> dict[str, Any]:
        """Predict and score everything on this worker; returns :func:`package_result`."""
        out = out_dir or self.output_dir(step, dataset)
        report = self.predict(out, 0, 1, checkpoint_dir, weights, max_videos, dataset)
        summary = self.score(report, out, dataset)
        return package_result(summary, report, out, step, self.cfg.eval.num_overlays, dataset)


def output_dir(cfg: Config, step: Optional[int] = None) -> str:
    """Where an evaluation writes: ``eval.out_dir`` (default ``<run_dir>/eval``), ``/step_<step:06d>`` with a step.
    An extra set ``name`` of ``eval.datasets`` writes to ``<eval.out_dir>/<name>/...`` (:func:`eval_set_config`)."""
    base = Path(cfg.eval.out_dir or Path(cfg.trainer.run_dir) / "eval")
    return str(base / f"step_{step:06d}" if step is not None else base)


def package_result(summary: dict[str, Any], report: PredictReport, out_dir: str, step: Optional[int],
                   num_overlays: Optional[int] = None, dataset: Optional[str] = None) -> dict[str, Any]:
    """``{"metrics": {val/...}, "overlays": [rl.eval.overlays.Overlay], "summary": ..., "out_dir": ...,
    "step": ...}``: at most ``num_overlays`` overlays (default: all), spread over the videos and scored
    from ``out_dir/per_expression.csv`` (``Overlay.blended()`` draws one into its enlarged keyframe,
    ``sH x sW x 3`` uint8). The metrics of an extra set ``dataset`` of
    ``eval.datasets`` are named ``val/<dataset>/...`` (:func:`metric_prefix`)."""
    from rl.eval.overlays import attach_scores, select_overlays

    limit = len(report.overlays) if num_overlays is None else num_overlays
    overlays = select_overlays(report.overlays, limit)
    attach_scores(overlays, Path(out_dir) / "per_expression.csv")
    return {"metrics": summary_metrics(summary, metric_prefix(dataset)), "overlays": overlays,
            "summary": summary, "out_dir": str(out_dir), "step": step, "dataset": dataset}


class PendingEvaluation:
    """An evaluation started by :meth:`Evaluator.submit`; :meth:`result` waits for it."""

    def __init__(self, evaluator: "Evaluator", refs: list[Any], out_dir: str, step: Optional[int],
                 dataset: Optional[str] = None):
        self._evaluator = evaluator
        self._refs = refs
        self.out_dir = out_dir
        self.step = step
        self.dataset = dataset

    def result(self) -> dict[str, Any]:
        import ray

        values = ray.get(self._refs)
        if len(values) == 1 and isinstance(values[0], dict):
            return values[0]
        report = PredictReport()
        for part in values:
            report.merge(part)
        summary = ray.get(self._evaluator.workers[0].score.remote(report, self.out_dir, self.dataset))
        return package_result(summary, report, self.out_dir, self.step, self._evaluator.cfg.eval.num_overlays,
                              self.dataset)


class Evaluator(WorkerGroup):
    """Driver-side handle of the evaluator actors (one per bundle of the plan's ``evaluator`` role).

    Args:
        cfg: the run config (``eval.*``, ``cluster.evaluator``).
        plan: a created :class:`~rl.placement.PlacementPlan` with an ``"evaluator"`` role; None
            makes (and later removes) a plan holding only the evaluator pool.
        model_path: initial policy; None: ``eval.checkpoint`` (or no policy until a
            ``checkpoint_dir`` is passed).
        wait: until the workers have started (else call :meth:`ready` later).
    """

    def __init__(self, cfg: Config, plan: Optional[PlacementPlan] = None, model_path: Optional[str] = None,
                 wait: bool = True):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("Evaluator needs Ray: call ray.init (rl.run_setup.init_ray) first")
        self.cfg = cfg
        self._own_plan = plan is None
        if plan is None:
            plan = PlacementPlan(cfg.cluster, {"evaluator": cfg.cluster.evaluator.num_workers})
            plan.create()
        if "evaluator" not in plan.slots:
            raise ValueError("the placement plan has no 'evaluator' role; build it with roles['evaluator'] = "
                             "cfg.cluster.evaluator.num_workers")
        self.plan = plan
        threads = max(1, int(plan.slots["evaluator"].cpus))
        super().__init__("evaluator", EvalWorker, bundle_options(plan, "evaluator"),
                         lambda i: (cfg, model_path, threads), wait=wait)

    def submit(self, checkpoint_dir: Optional[str] = None, weights: Any = None, step: Optional[int] = None,
               out_dir: Optional[str] = None, max_videos: Optional[int] = None,
               dataset: Optional[str] = None) -> PendingEvaluation:
        """Start an evaluation without waiting (the driver may keep training meanwhile). ``dataset``:
        an extra set of ``eval.datasets`` by name (None: the main set); without ``checkpoint_dir`` /
        ``weights`` the workers keep the policy they hold."""
        out = str(out_dir or output_dir(eval_set_config(self.cfg, dataset), step))
        if weights is not None and not isinstance(weights, (list, tuple)):
            weights = list(_named_tensors(weights))
        if len(self.workers) == 1:
            refs = [self.workers[0].evaluate.remote(checkpoint_dir, weights, step, out, max_videos, dataset)]
        else:
            n = len(self.workers)
            refs = [w.predict.remote(out, i, n, checkpoint_dir, weights, max_videos, dataset)
                    for i, w in enumerate(self.workers)]
        return PendingEvaluation(self, refs, out, step, dataset)

    def evaluate(self, checkpoint_dir: Optional[str] = None, weights: Any = None, step: Optional[int] = None,
                 out_dir: Optional[str] = None, max_videos: Optional[int] = None,
                 dataset: Optional[str] = None) -> dict[str, Any]:
        """Run an evaluation and wait for it; see :func:`package_result` for the returned dict."""
        return self.submit(checkpoint_dir, weights, step, out_dir, max_videos, dataset).result()

    def shutdown(self) -> None:
        super().shutdown()
        if self._own_plan:
            self.plan.remove()
