"""The evaluation pipeline: frame sampler -> grounding -> keyframe segmenter -> propagation -> J&F.

``EvalPipeline(cfg, model_path).run(root, format, split, out_dir)`` processes the videos
in batches of ``eval.videos_per_batch``:

1. **loading**: every frame of the batch's videos (a missing / corrupt / wrongly sized
   frame or unreadable ground truth skips the video: logged, counted under
   ``skipped_videos`` in the summary, and the video is left out of scoring);
2. **sampler**: one keyframe per expression (:mod:`rl.eval.samplers`, ``eval.sampler``),
   MLLM questions batched over all expressions of the batch;
3. **grounding**: the policy's KTG answer on the keyframe (:mod:`rl.eval.segment`),
   batched; or GT cues (``eval.oracle_cues``, always on without a policy); or the
   sampler's own boxes (Veason-R1);
4. **segmentation**: the keyframe segmenter (``eval.segmenter``; one call per keyframe image);
5. **propagation**: both directions from the keyframe (``eval.propagator``); an empty
   keyframe mask gives empty masks;
6. **writing**: ``OUT/<video>/<expression id>/<frame>.png`` (0 / 255), the layout of
   :mod:`rl.eval.scoring`;
7. **scoring**: :func:`rl.eval.scoring.run_score` -> ``OUT/per_expression.csv`` and
   ``OUT/summary.json`` (ReVOS splits and R for revos and synthetic data).

``summary.json`` is then extended with the run settings, per-stage seconds and shares
(``timing_s``, ``timing_share``), MLLM call counts, answer / fallback counters of the
sampler and grounding (``stats``), skipped videos and the means of the RCoT-Seg
diagnostics; the per-expression diagnostics (keyframe, keyframe area ratio, AKS rounds,
box IoU before segmentation, ...) go to ``OUT/diagnostics.csv``.

Without a policy (no ``model_path``) GT cues are used and ``eval.sampler=auto`` means
``oracle``; with one, ``auto`` means ``hierarchical``. The model-input PNGs of the
sampler and grounding questions live in a temporary folder removed at the end.

Which data and videos are read is decided in :mod:`rl.eval.datasets`; the report and
diagnostics records are in :mod:`rl.eval.diagnostics`; this module checks ``eval.*`` and
runs the stages.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from data.io import write_png
from data.types import VideoSample
from rl.config import Config, ConfigError
from rl.schema import problems
from rl.eval.datasets import DATASET_FORMATS, gt_union_areas, open_subset_reader, resolve_dataset, select_videos
from rl.eval.diagnostics import (
    ExpressionDiagnostics,
    PredictReport,
    diagnostics_summary,
    overlay,
    write_diagnostics_csv,
)
from rl.eval.overlays import Overlay, overlay_quota
from rl.eval.metrics import keyframe_area_ratio
from rl.eval.prediction_io import prediction_path
from rl.eval.propagate import build_eval_propagator, propagate_mask
from rl.eval.samplers import MLLM_SAMPLERS, MLLMClient, SamplerQuery, SamplerResult, build_sampler
from rl.eval.samplers.frames import FrameError, VideoFrames
from rl.eval.segment import (
    MALFORMED,
    ORACLE,
    SAMPLER,
    Grounding,
    GroundingRequest,
    GroundingStage,
    ObjectCue,
    box_iou_before_segmentation,
    oracle_cues,
    segment_keyframe,
)
from rl.timing import PhaseTimer

log = logging.getLogger(__name__)

# DATASET_FORMATS, resolve_dataset, select_videos, open_subset_reader, gt_union_areas (rl.eval.datasets) and
# PredictReport, ExpressionDiagnostics, overlay (rl.eval.diagnostics) are re-exported for existing imports.
__all__ = [
    "STAGES", "DATASET_FORMATS", "EvalPipeline", "PredictReport", "ExpressionDiagnostics", "check_eval_config",
    "resolve_dataset", "select_videos", "overlay", "open_subset_reader", "gt_union_areas",
]

STAGES = ("loading", "sampler", "grounding", "segmentation", "propagation", "writing", "scoring")
# Data problems that skip a video (data.io errors are OSError / ValueError, unknown ids LookupError).
_DATA_ERRORS = (OSError, ValueError, LookupError)


# ------------------------------------------------------------------ configuration


def check_eval_config(cfg: Config) -> None:
    """Raise :class:`ConfigError` naming the key for a bad ``eval.*`` value: the rules of
    :class:`rl.eval.config.EvalConfig` (choices, bounds), which :func:`rl.config.load_config`
    applies at start-up; checked again here for configs changed in code."""
    found = problems(cfg.eval, "eval")
    if found:
        raise ConfigError("; ".join(found))


# ------------------------------------------------------------------ per-video work


@dataclass
class _Video:
    sample: VideoSample
    frames: VideoFrames
    # exp_id -> T GT union areas (None without masks)
    areas: dict[str, Optional[np.ndarray]]


@dataclass
class _Item:
    video: _Video
    exp_id: str
    query: SamplerQuery
    result: Optional[SamplerResult] = None
    grounding: Optional[Grounding] = None
    mask: Optional[np.ndarray] = None


class EvalPipeline:
    """Runs the evaluation of one policy (or of GT cues) on a data set.

    Args:
        cfg: the run's :class:`Config` (``eval.*``, plus ``data.input_size``,
            ``data.num_sampled_frames``, ``rollout.*`` sampling, ``model.*`` loading).
        model_path: HF checkpoint of the policy, or None (no policy: GT cues).
        backend / sampler_backend: ready :class:`~rl.rollout.base.RolloutBackend` objects to use
            instead of loading ``model_path`` / ``eval.sampler_model`` (tests, the evaluator actor).
        segmenter / propagator: ready objects instead of building them from ``eval.*``.
    """

    def __init__(self, cfg: Config, model_path: Optional[str] = None, *, backend: Any = None,
                 sampler_backend: Any = None, segmenter: Any = None, propagator: Any = None):
        check_eval_config(cfg)
        self.cfg = cfg
        ev = cfg.eval
        self.model_path = str(model_path) if model_path else None
        self.backend = backend
        if self.backend is None and self.model_path:
            self.backend = self._load_backend(self.model_path)
        has_policy = self.backend is not None
        self.oracle_cues = ev.oracle_cues or not has_policy
        if not has_policy and not ev.oracle_cues:
            log.info("no policy given: grounding with GT cues (eval.oracle_cues)")
        self.sampler_name = ev.sampler if ev.sampler != "auto" else ("hierarchical" if has_policy else "oracle")
        if sampler_backend is None and ev.sampler_model:
            sampler_backend = self._load_backend(ev.sampler_model)
        sampler_backend = sampler_backend if sampler_backend is not None else self.backend
        self.sampler_client = None
        if self.sampler_name in MLLM_SAMPLERS:
            if sampler_backend is None:
                raise ConfigError(
                    f"eval.sampler={self.sampler_name!r} asks the MLLM but there is no policy: give checkpoint=PATH "
                    "(eval.checkpoint) or eval.sampler_model, or use eval.sampler=oracle|first_frame")
            self.sampler_client = MLLMClient(sampler_backend, max_tokens=ev.sampler_max_tokens,
                                             temperature=ev.sampler_temperature, seed=ev.seed)
        self.sampler = build_sampler(self.sampler_name, cfg, self.sampler_client)
        self.policy_client = None
        self.grounding = None
        if not self.oracle_cues:
            self.policy_client = MLLMClient(self.backend, max_tokens=cfg.rollout.max_response_length,
                                            temperature=cfg.rollout.val_temperature, seed=ev.seed)
            self.grounding = GroundingStage(self.policy_client, cfg.data.input_size,
                                            negative_points=ev.negative_points,
                                            temperature=cfg.rollout.val_temperature,
                                            max_tokens=cfg.rollout.max_response_length,
                                            prompt_style=cfg.data.prompt_style)
        self.use_sampler_boxes = self.sampler_name == "veason" and ev.veason_use_answer_boxes and not self.oracle_cues
        if segmenter is None:
            from rewards.vision.factory import build_segmenter

            segmenter = build_segmenter(ev.segmenter)
        self.segmenter = segmenter
        self.propagator = propagator if propagator is not None else build_eval_propagator(ev)
        # Overlays kept per video and the (video, keyframe, targets) already drawn (reset by predict).
        self._overlay_quota = ev.num_overlays
        self._overlay_targets: set[tuple[str, int, tuple[str, ...]]] = set()

    def _load_backend(self, path: str) -> Any:
        if not Path(path).is_dir():   # fail before importing the model stack
            raise FileNotFoundError(f"model checkpoint directory not found: {path}")
        import dataclasses

        from rl.rollout import build_rollout_backend

        rollout = self.cfg.rollout
        if self.cfg.eval.backend and self.cfg.eval.backend != rollout.backend:
            rollout = dataclasses.replace(rollout, backend=self.cfg.eval.backend)
        return build_rollout_backend(rollout, path, device=self.cfg.trainer.device, dtype=self.cfg.model.dtype,
                                     attn_implementation=self.cfg.model.attn_implementation, seed=self.cfg.eval.seed)

    # ------------------------------------------------------------------ weights
    def update_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> int:
        """Load new policy weights into the policy backend (then its caches are reset)."""
        if self.backend is None:
            raise RuntimeError("this pipeline has no policy backend to update (it was built without a model)")
        count = self.backend.update_weights(named_tensors)
        self.backend.reset_caches()
        return count

    def describe(self) -> dict[str, Any]:
        ev = self.cfg.eval
        return {"sampler": self.sampler_name, "propagator": ev.propagator, "segmenter": ev.segmenter.backend,
                "oracle_cues": self.oracle_cues, "checkpoint": self.model_path,
                "sampler_model": ev.sampler_model or None, "input_size": list(self.cfg.data.input_size)}

    # ------------------------------------------------------------------ public API
    def run(self, dataset_root: str, dataset_format: str, split: Optional[str], out_dir: str,
            max_videos: Optional[int] = None) -> dict[str, Any]:
        """Predict and score; returns the summary dict (also written to ``out_dir/summary.json``)."""
        from data.readers import open_dataset

        if dataset_format not in DATASET_FORMATS:
            raise ValueError(f"unknown data set format {dataset_format!r}; expected one of {list(DATASET_FORMATS)}")
        reader = open_dataset(dataset_root, dataset_format, split)
        where = f"{dataset_root} ({dataset_format}, split {split or 'default'})"
        ids = select_videos(reader.video_ids(), max_videos, where)
        report = self.predict(reader, ids, out_dir)
        return self.score(report, dataset_root, dataset_format, split, out_dir)

    def predict(self, reader: Any, video_ids: Sequence[str], out_dir: str) -> PredictReport:
        """Write the predicted masks of ``video_ids`` under ``out_dir``; returns the report."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = PredictReport()
        # Overlays: at most eval.num_overlays, spread over the videos, one per distinct target.
        self._overlay_quota = overlay_quota(self.cfg.eval.num_overlays, len(video_ids))
        self._overlay_targets = set()
        timer = PhaseTimer()
        work = Path(tempfile.mkdtemp(prefix="vrs-eval-inputs-"))
        batch_size = self.cfg.eval.videos_per_batch
        bar = tqdm(total=len(video_ids), desc="evaluate", unit="video", disable=not self.cfg.eval.progress)
        try:
            for start in range(0, len(video_ids), batch_size):
                batch = list(video_ids[start: start + batch_size])
                self._predict_batch(reader, batch, out, work, timer, report)
                bar.update(len(batch))
        finally:
            bar.close()
            shutil.rmtree(work, ignore_errors=True)
        report.timing = dict(timer.times)
        report.stats.update(self.sampler.stats)
        if self.grounding is not None:
            report.stats.update(self.grounding.stats)
        report.stats.update({f"segmenter/{k}": v for k, v in getattr(self.segmenter, "stats", {}).items()})
        for name, client in (("sampler", self.sampler_client), ("policy", self.policy_client)):
            if client is not None:
                report.mllm.update({f"{name}_calls": client.calls, f"{name}_prompts": client.prompts,
                                    f"{name}_seconds": client.seconds})
        return report

    def score(self, report: PredictReport, dataset_root: str, dataset_format: str, split: Optional[str],
              out_dir: str) -> dict[str, Any]:
        """Score the predicted videos of ``report`` and write the extended ``summary.json``.

        Videos of a split released without masks (e.g. MeViS valid) are predicted but not
        scored (their official server scores them); ``summary["unscored_no_gt"]`` counts them.
        """
        from rl.eval.scoring import FORMATS, run_score

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        score_format = dataset_format if dataset_format in FORMATS else "revos"   # synthetic: ReVOS layout
        no_gt = set(report.no_gt)
        scored = [v for v in report.video_ids if v not in no_gt]
        opener = functools.partial(open_subset_reader, str(dataset_root), dataset_format, split, tuple(scored))
        start = time.perf_counter()
        if scored:
            summary = run_score(str(dataset_root), score_format, str(out), str(out), split=split,
                                workers=self.cfg.eval.score_workers, progress=self.cfg.eval.progress,
                                open_reader=opener)
        else:
            log.warning("no predicted video has ground-truth masks: predictions written to %s, nothing scored", out)
            summary = {"J": None, "F": None, "J&F": None, "num_expressions": 0, "num_videos": 0}
        report.timing["scoring"] = report.timing.get("scoring", 0.0) + time.perf_counter() - start
        total = sum(report.timing.values())
        summary.update({
            "dataset_format": dataset_format,
            "pipeline": self.describe(),
            "timing_s": {k: report.timing.get(k, 0.0) for k in STAGES},
            "timing_share": {k: (report.timing.get(k, 0.0) / total if total else 0.0) for k in STAGES},
            "seconds_per_video": total / len(report.video_ids) if report.video_ids else None,
            "mllm": dict(report.mllm),
            "stats": dict(sorted(report.stats.items())),
            "skipped_videos": {"count": len(report.skipped), "videos": report.skipped[:20]},
            "unscored_no_gt": len(report.no_gt),
            "diagnostics": diagnostics_summary(report.rows),
        })
        if report.skipped:
            log.warning("%d videos skipped (unreadable data) and not scored: %s", len(report.skipped),
                        ", ".join(s["video"] for s in report.skipped[:5]))
        write_diagnostics_csv(out / "diagnostics.csv", report.rows)
        with open(out / "summary.json", "w") as handle:
            json.dump(summary, handle, indent=2, allow_nan=False, default=float)
        return summary

    # ------------------------------------------------------------------ batch stages
    def _load(self, reader: Any, video_id: str, work: Path) -> _Video:
        sample = reader[video_id]
        frames = VideoFrames(sample, work)
        frames.video()
        if sample.has_masks:
            areas: dict[str, Optional[np.ndarray]] = dict(gt_union_areas(sample))
        else:
            areas = {exp_id: None for exp_id in sample.expressions}
        return _Video(sample, frames, areas)

    def _predict_batch(self, reader: Any, batch: list[str], out: Path, work: Path, timer: PhaseTimer,
                       report: PredictReport) -> None:
        videos: list[_Video] = []
        with timer.phase("loading"):
            for video_id in batch:
                try:
                    videos.append(self._load(reader, video_id, work))
                except (FrameError, *_DATA_ERRORS) as exc:
                    log.warning("skipping video %r: %s", video_id, exc)
                    report.skipped.append({"video": video_id, "reason": f"{type(exc).__name__}: {exc}"})
                    report.stats["skipped_videos"] += 1
        items = [
            _Item(v, exp_id, SamplerQuery(v.frames, exp_id, exp.text, v.areas[exp_id]))
            for v in videos for exp_id, exp in v.sample.expressions.items()
        ]
        with timer.phase("sampler"):
            for item, result in zip(items, self.sampler.select([i.query for i in items])):
                item.result = result
        with timer.phase("grounding"):
            self._ground(items)
        with timer.phase("segmentation"):
            self._segment(items)
        for video in videos:
            own = [i for i in items if i.video is video]
            with timer.phase("propagation"):
                masks = [propagate_mask(self.propagator, video.frames.video(), i.result.keyframe, i.mask) for i in own]
            with timer.phase("writing"):
                for item, stack in zip(own, masks):
                    self._write(out, item, stack)
                    report.rows.append(self._diagnostics(item))
                    self._maybe_overlay(item, report)
            report.video_ids.append(video.sample.video_id)
            if not video.sample.has_masks:
                report.no_gt.append(video.sample.video_id)
            video.frames.release()

    def _ground(self, items: list[_Item]) -> None:
        asked: list[_Item] = []
        for item in items:
            sample, k, result = item.video.sample, item.result.keyframe, item.result
            if self.oracle_cues:
                if not sample.has_masks:
                    raise ValueError(f"eval.oracle_cues needs ground-truth masks; {sample.dataset}/{sample.split} has none")
                item.grounding = oracle_cues([sample.object_mask(o, k) for o in sample.expressions[item.exp_id].obj_ids])
            elif self.use_sampler_boxes:
                boxes = result.boxes
                if boxes is None:
                    item.grounding = Grounding([], MALFORMED)
                else:
                    item.grounding = Grounding([ObjectCue(box=tuple(float(v) for v in b)) for b in boxes], SAMPLER)
                self.sampler.stats[f"grounding/{item.grounding.status}"] += 1
            else:
                asked.append(item)
        if not asked:
            return
        size = self.cfg.data.input_size
        requests = []
        for item in asked:
            frames, result = item.video.frames, item.result
            refs = result.reference_frames if self.cfg.eval.grounding_reference_frames else []
            requests.append(GroundingRequest(
                query=item.query.text, keyframe_image=frames.image_path(result.keyframe, size),
                orig_size=frames.size, reference_images=frames.image_paths(refs, size),
                description=result.description))
        for item, grounding in zip(asked, self.grounding.ground(requests)):
            item.grounding = grounding

    def _segment(self, items: list[_Item]) -> None:
        groups: dict[tuple[int, int], list[_Item]] = {}
        for item in items:
            groups.setdefault((id(item.video), item.result.keyframe), []).append(item)
        for members in groups.values():
            image = members[0].video.frames.frame(members[0].result.keyframe)
            masks = segment_keyframe(self.segmenter, image, [m.grounding for m in members])
            for member, mask in zip(members, masks):
                member.mask = np.asarray(mask, dtype=bool)

    def _write(self, out: Path, item: _Item, stack: np.ndarray) -> None:
        sample = item.video.sample
        for t, name in enumerate(sample.frame_names):
            write_png(prediction_path(out, sample.video_id, item.exp_id, name), stack[t])

    def _diagnostics(self, item: _Item) -> ExpressionDiagnostics:
        sample, result, grounding = item.video.sample, item.result, item.grounding
        exp = sample.expressions[item.exp_id]
        row = ExpressionDiagnostics(
            video=sample.video_id, exp_id=item.exp_id, type_id=int(exp.type_id), num_targets=len(exp.obj_ids),
            keyframe=result.keyframe, grounding=grounding.status, num_objects=len(grounding.objects),
            keyframe_mask_area=int(item.mask.sum()), initial_keyframe=result.initial_keyframe,
            aks_rounds=result.aks_rounds, htfs_levels=result.levels if result.segment is not None else None,
            segment=f"{result.segment[0]}-{result.segment[1]}" if result.segment is not None else None,
            reference_frames=" ".join(str(t) for t in result.reference_frames), fallbacks=" ".join(result.fallbacks))
        areas = item.video.areas.get(item.exp_id)
        if areas is not None:
            best = int(areas.max())
            row.keyframe_area_ratio = float(keyframe_area_ratio(int(areas[result.keyframe]), best))
            if result.initial_keyframe is not None:
                row.initial_area_ratio = float(keyframe_area_ratio(int(areas[result.initial_keyframe]), best))
            if grounding.status != ORACLE:
                gt = oracle_cues([sample.object_mask(o, result.keyframe) for o in exp.obj_ids])
                row.box_iou = box_iou_before_segmentation(grounding.boxes, gt.boxes)
            else:
                row.box_iou = 1.0
        return row

    def _maybe_overlay(self, item: _Item, report: PredictReport) -> None:
        """Keep the expression's keyframe, prediction and GT for the overlays unless the quota is
        used (``eval.num_overlays`` in all, :func:`overlay_quota` per video), it has no target, or
        an expression of the same video with the same targets on the same keyframe is kept already."""
        sample, k = item.video.sample, item.result.keyframe
        exp = sample.expressions[item.exp_id]
        if len(report.overlays) >= self.cfg.eval.num_overlays or not exp.obj_ids:
            return
        if sum(o.video == sample.video_id for o in report.overlays) >= self._overlay_quota:
            return
        target = (sample.video_id, int(k), tuple(sorted(str(o) for o in exp.obj_ids)))
        if target in self._overlay_targets:
            return
        self._overlay_targets.add(target)
        gt = np.asarray(sample.expression_mask(item.exp_id, k), dtype=bool) if sample.has_masks else None
        report.overlays.append(Overlay(
            video=sample.video_id, exp_id=str(item.exp_id), query=str(exp.text), keyframe=int(k),
            frame=np.array(item.video.frames.frame(k), dtype=np.uint8), pred=np.array(item.mask, dtype=bool), gt=gt))

    def close(self) -> None:
        for backend in {id(b): b for b in (self.backend, getattr(self.sampler_client, "backend", None)) if b}.values():
            try:
                backend.close()
            except Exception:  # noqa: BLE001 - best effort
                pass
