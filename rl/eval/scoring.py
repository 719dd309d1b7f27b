"""Scoring a prediction folder against a dataset's ground truth (``launch.evaluate score``).

Predictions: ``PRED/<video>/<expression id>/<frame name>.png``, binary masks
or one-object palette / colour masks (see :mod:`rl.eval.prediction_io`; soft
maps only with an explicit ``threshold``). Ground truth: a dataset reader
(``data.readers.open_dataset``) giving :class:`data.types.VideoSample` objects;
the GT of an expression is the union of its objects' masks on every frame.

Per expression: J and F per frame averaged over all frames of the video
(MeViS / ReVOS / VISA protocol, also used here for Ref-YouTube-VOS and
Ref-DAVIS17 in their Ref-YouTube-VOS layout; note the DAVIS semi-supervised
protocol would drop the first and last frames, VISA's Ref-DAVIS tool does
not). ReVOS adds R against the video's foreground. Summary: see
:mod:`rl.eval.accumulator`.

Prediction problems never fail silently and never stop the run: a missing PNG
(or a missing expression folder) is scored as an empty mask, an undecodable
PNG likewise, a PNG of the wrong size is resized (nearest) to the GT size; all
are counted per expression (``per_expression.csv``), in total
(``summary.json``) and logged. Ground-truth problems (a reader error) stop the
run with the video named.

Input checks that do stop the run (nothing is written): a prediction PNG that
is not a valid mask (:class:`~rl.eval.prediction_io.PredictionFormatError`,
naming the file: e.g. a background of 1..3 or a probability map without a
threshold), and a prediction folder that holds no PNG at all or none for any
scored expression (:class:`NoPredictionsError`). ``summary.json`` records how
many expressions had at least one prediction PNG and how many frames were
thresholded.

Outputs: ``OUT/per_expression.csv`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from tqdm import tqdm

from data.types import VideoSample
from rl.eval.accumulator import ExpressionScore, MetricAccumulator
from rl.eval.boundary import DEFAULT_BOUND_TH, boundary_f
from rl.eval.metrics import db_iou, revos_robustness_per_frame
from rl.eval.prediction_io import (MISSING, RESIZED, UNREADABLE, PredictionFormatError, check_threshold,
                                   prediction_path, read_prediction_mask)

logger = logging.getLogger(__name__)

FORMATS = ("mevis", "revos", "refytvos", "davis")
ReaderFactory = Callable[[], Any]   # () -> reader with video_ids() and reader[video_id] -> VideoSample
MAX_EXAMPLES = 20                   # example messages kept in summary.json


class NoPredictionsError(FileNotFoundError):
    """The prediction folder holds no PNG, or none for any scored expression."""


@dataclass
class VideoResult:
    """Scores of one video's expressions plus messages for the log (workers return these)."""

    video_id: str
    rows: list[ExpressionScore]
    messages: list[str] = field(default_factory=list)
    missing_expression_dirs: int = 0
    thresholded_frames: int = 0          # soft-map PNGs binarised with the threshold
    expressions_with_predictions: int = 0  # expressions with at least one prediction PNG


def _foreground_fn(sample: VideoSample) -> Callable[[int], np.ndarray]:
    """Frame index -> ``H x W`` bool foreground of all annotated objects (ReVOS R).

    Uses ``sample.foreground_loader`` (``mask_dict_foreground.json``); without it,
    the union of every object referred to by the video's expressions, which is
    how ReVOS built that file.
    """
    if sample.foreground_loader is not None:
        return sample.foreground_loader
    obj_ids = sorted({o for exp in sample.expressions.values() for o in exp.obj_ids})

    def union(index: int) -> np.ndarray:
        mask = np.zeros((sample.height, sample.width), dtype=bool)
        for obj_id in obj_ids:
            mask |= sample.object_mask(obj_id, index)
        return mask

    return union


def score_video(
    sample: VideoSample,
    pred_dir: Path,
    *,
    with_robustness: bool = False,
    bound_th: float = DEFAULT_BOUND_TH,
    threshold: Optional[float] = None,
) -> VideoResult:
    """J, F (and R) of every expression of one video; frames are streamed, never stacked.

    Args:
        sample: the video's ground truth.
        pred_dir: root of the prediction folder (``<pred_dir>/<video>/<exp>/<frame>.png``).
        with_robustness: also compute ReVOS R (needs a foreground, see :func:`_foreground_fn`).
        bound_th: boundary tolerance of F.
        threshold: binarise soft grey maps at ``threshold`` x full scale (None: they are an error).
    """
    video = sample.video_id
    num_frames = sample.num_frames
    exp_ids = list(sample.expressions)
    result = VideoResult(video_id=video, rows=[])
    if not exp_ids:
        result.messages.append(f"{video}: no expressions, nothing scored")
        return result
    if num_frames == 0:
        raise ValueError(f"video {video!r} has no frames")
    if not getattr(sample, "has_masks", True):
        raise ValueError(
            f"{sample.dataset}/{sample.split} video {video!r} has no ground-truth masks (a split released "
            "without annotations, e.g. MeViS valid or Ref-YouTube-VOS valid, is scored by its official server)"
        )

    j_vals = {e: np.empty(num_frames) for e in exp_ids}
    f_vals = {e: np.empty(num_frames) for e in exp_ids}
    r_vals = {e: np.empty(num_frames) for e in exp_ids}
    counts = {e: {MISSING: 0, RESIZED: 0, UNREADABLE: 0} for e in exp_ids}
    first_issue: dict[tuple[str, str], str] = {}
    foreground = _foreground_fn(sample) if with_robustness else None

    for t in range(num_frames):
        fg = foreground(t) if foreground is not None else None
        for exp_id in exp_ids:
            gt = sample.expression_mask(exp_id, t)
            path = prediction_path(pred_dir, video, exp_id, sample.frame_names[t])
            pred, status, thresholded = read_prediction_mask(path, gt.shape[0], gt.shape[1], threshold)
            result.thresholded_frames += int(thresholded)
            if status in counts[exp_id]:
                counts[exp_id][status] += 1
                first_issue.setdefault((exp_id, status), str(path))
            j_vals[exp_id][t] = db_iou(gt, pred)
            f_vals[exp_id][t] = boundary_f(gt, pred, bound_th)
            if fg is not None:
                if fg.shape != gt.shape:
                    raise ValueError(
                        f"video {video!r} frame {t}: foreground mask {fg.shape} and GT mask {gt.shape} differ"
                    )
                r_vals[exp_id][t] = revos_robustness_per_frame(gt, pred, fg)

    for exp_id in exp_ids:
        c = counts[exp_id]
        result.expressions_with_predictions += int(c[MISSING] < num_frames)
        exp_dir = Path(pred_dir) / video / str(exp_id)
        if c[MISSING] == num_frames and not exp_dir.is_dir():
            result.missing_expression_dirs += 1
            result.messages.append(
                f"{video}/{exp_id}: no prediction folder {exp_dir}; all {num_frames} frames scored as empty masks"
            )
        elif c[MISSING]:
            result.messages.append(
                f"{video}/{exp_id}: {c[MISSING]} of {num_frames} prediction PNGs missing, scored as empty masks "
                f"(first: {first_issue[(exp_id, MISSING)]})"
            )
        if c[UNREADABLE]:
            result.messages.append(
                f"{video}/{exp_id}: {c[UNREADABLE]} of {num_frames} prediction PNGs unreadable, scored as empty "
                f"masks (first: {first_issue[(exp_id, UNREADABLE)]})"
            )
        if c[RESIZED]:
            result.messages.append(
                f"{video}/{exp_id}: {c[RESIZED]} of {num_frames} predictions not of the GT size "
                f"{sample.height}x{sample.width}, resized (nearest) (first: {first_issue[(exp_id, RESIZED)]})"
            )
        result.rows.append(
            ExpressionScore(
                video=video,
                exp_id=str(exp_id),
                type_id=int(sample.expressions[exp_id].type_id),
                j=float(j_vals[exp_id].mean()),
                f=float(f_vals[exp_id].mean()),
                r=float(r_vals[exp_id].mean()) if with_robustness else None,
                num_frames=num_frames,
                missing_frames=c[MISSING],
                resized_frames=c[RESIZED],
                unreadable_frames=c[UNREADABLE],
                num_objects=len(sample.expressions[exp_id].obj_ids),
            )
        )
    return result


# ----------------------------------------------------------------- process pool
_WORKER_READER: Any = None


def _init_worker(open_reader: ReaderFactory) -> None:
    global _WORKER_READER
    _WORKER_READER = open_reader()


def _score_in_worker(video_id: str, pred_dir: Path, with_robustness: bool, bound_th: float,
                     threshold: Optional[float] = None) -> VideoResult:
    return score_video(_WORKER_READER[video_id], pred_dir, with_robustness=with_robustness, bound_th=bound_th,
                       threshold=threshold)


def score_dataset(
    open_reader: ReaderFactory,
    pred_dir: Path,
    *,
    by_type: bool = False,
    with_robustness: bool = False,
    workers: int = 1,
    bound_th: float = DEFAULT_BOUND_TH,
    progress: bool = True,
    video_ids: Optional[Sequence[str]] = None,
    threshold: Optional[float] = None,
) -> tuple[MetricAccumulator, list[VideoResult]]:
    """Score every video of the reader; rows come out in the reader's video order.

    Args:
        open_reader: picklable zero-argument callable returning the dataset
            reader (each pool worker opens its own copy).
        workers: > 1 runs a process pool (spawn start method) over videos.
        video_ids: subset to score (default: ``reader.video_ids()``).
        threshold: see :func:`score_video`.
    """
    reader = open_reader()
    ids = list(video_ids) if video_ids is not None else list(reader.video_ids())
    results: dict[str, VideoResult] = {}
    bar = tqdm(total=len(ids), desc="scoring", unit="video", disable=not progress)
    try:
        if workers <= 1 or len(ids) <= 1:
            for vid in ids:
                results[vid] = _score_one(vid, lambda v=vid: score_video(
                    reader[v], pred_dir, with_robustness=with_robustness, bound_th=bound_th, threshold=threshold))
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=min(workers, len(ids)), mp_context=ctx, initializer=_init_worker, initargs=(open_reader,)
            ) as pool:
                futures = {
                    pool.submit(_score_in_worker, vid, pred_dir, with_robustness, bound_th, threshold): vid
                    for vid in ids
                }
                try:
                    for future in as_completed(futures):
                        vid = futures[future]
                        results[vid] = _score_one(vid, future.result)
                        bar.update(1)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()

    accumulator = MetricAccumulator(by_type=by_type, with_robustness=with_robustness)
    ordered = [results[vid] for vid in ids]
    for res in ordered:
        for message in res.messages:
            logger.warning(message)
        accumulator.extend(res.rows)
    return accumulator, ordered


def _score_one(video_id: str, compute: Callable[[], VideoResult]) -> VideoResult:
    try:
        return compute()
    except PredictionFormatError:  # names the file already
        raise
    except Exception as exc:  # a ground-truth problem: stop, naming the video
        raise RuntimeError(f"scoring video {video_id!r} failed: {type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------ entry point
def open_dataset_reader(dataset_root: str, dataset_format: str, split: Optional[str] = None) -> Any:
    """``data.readers.open_dataset(root, format[, split=...])`` (module-level, so it pickles for workers)."""
    from data.readers import open_dataset

    kwargs = {"split": split} if split is not None else {}
    return open_dataset(dataset_root, dataset_format, **kwargs)


def _list_unscored_videos(pred_dir: Path, video_ids: Sequence[str]) -> list[str]:
    """Top-level folders of ``pred_dir`` that hold no scored video (ReVOS ids such as "UVO/all/x" nest)."""
    known = {vid.split("/", 1)[0] for vid in video_ids}
    return sorted(p.name for p in Path(pred_dir).iterdir() if p.is_dir() and p.name not in known)


def build_summary(
    accumulator: MetricAccumulator,
    results: Sequence[VideoResult],
    *,
    extra: Optional[dict] = None,
    unscored_videos: Sequence[str] = (),
    threshold: Optional[float] = None,
) -> dict:
    """``summary.json`` content: the accumulator's summary plus prediction-file counts and run info."""
    rows = accumulator.rows
    messages = [m for r in results for m in r.messages]
    summary = dict(accumulator.summary())
    summary["num_videos"] = len(results)
    summary["prediction_files"] = {
        "total_frames": sum(r.num_frames for r in rows),
        "missing_frames": sum(r.missing_frames for r in rows),
        "resized_frames": sum(r.resized_frames for r in rows),
        "unreadable_frames": sum(r.unreadable_frames for r in rows),
        "missing_expression_dirs": sum(r.missing_expression_dirs for r in results),
        "expressions_with_missing_frames": sum(1 for r in rows if r.missing_frames),
        "unscored_prediction_videos": len(unscored_videos),
        "expressions_with_predictions": sum(r.expressions_with_predictions for r in results),
        "expressions_without_predictions": len(rows) - sum(r.expressions_with_predictions for r in results),
        "thresholded_frames": sum(r.thresholded_frames for r in results),
        "threshold": threshold,
        "messages": messages[:MAX_EXAMPLES],
        "messages_total": len(messages),
    }
    if extra:
        summary.update(extra)
    return summary


def run_score(
    dataset_root: str,
    dataset_format: str,
    pred_dir: str,
    out_dir: str,
    *,
    split: Optional[str] = None,
    workers: int = 1,
    bound_th: float = DEFAULT_BOUND_TH,
    progress: bool = True,
    open_reader: Optional[ReaderFactory] = None,
    threshold: Optional[float] = None,
) -> dict:
    """Score ``pred_dir`` against the dataset and write ``out_dir/{per_expression.csv,summary.json}``.

    ``open_reader`` overrides how the reader is opened (tests); by default
    :func:`open_dataset_reader` with ``dataset_root``, ``dataset_format``, ``split``.
    ``threshold`` in (0, 1) binarises soft grey maps (see :mod:`rl.eval.prediction_io`).
    Returns the summary dict. Raises :class:`NoPredictionsError` / ``PredictionFormatError``
    (nothing written) for an empty prediction folder / an invalid prediction PNG.
    """
    if dataset_format not in FORMATS:
        raise ValueError(f"unknown format {dataset_format!r}; expected one of {', '.join(FORMATS)}")
    root = Path(dataset_root)
    pred = Path(pred_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    if not pred.is_dir():
        raise FileNotFoundError(f"prediction folder {pred} does not exist")
    if next(pred.rglob("*.png"), None) is None:
        raise NoPredictionsError(f"no prediction PNGs under {pred} (expected <video>/<expression id>/<frame>.png)")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    check_threshold(threshold)
    if open_reader is None:
        open_reader = functools.partial(open_dataset_reader, str(root), dataset_format, split)

    is_revos = dataset_format == "revos"
    accumulator, results = score_dataset(
        open_reader, pred, by_type=is_revos, with_robustness=is_revos,
        workers=workers, bound_th=bound_th, progress=progress, threshold=threshold,
    )
    unscored = _list_unscored_videos(pred, [r.video_id for r in results])
    if unscored:
        logger.warning("%d prediction folders are not videos of the dataset (not scored), e.g. %s",
                       len(unscored), ", ".join(unscored[:5]))
    summary = build_summary(
        accumulator, results, unscored_videos=unscored, threshold=threshold,
        extra={"format": dataset_format, "dataset_root": str(root), "split": split,
               "pred_dir": str(pred), "bound_th": bound_th},
    )
    files = summary["prediction_files"]
    if files["total_frames"] and files["expressions_with_predictions"] == 0:
        raise NoPredictionsError(
            f"no prediction PNG under {pred} for any of the {len(accumulator)} scored expressions "
            f"({len(results)} videos; wrong --pred or --split?); nothing written")
    if files["thresholded_frames"]:
        logger.warning("%d of %d prediction PNGs were soft maps, binarised with threshold %g "
                       "(foreground = value >= %g x full scale)", files["thresholded_frames"],
                       files["total_frames"], threshold, threshold)
    if files["missing_frames"]:
        logger.warning("%d of %d prediction PNGs missing (scored as empty masks) in %d expressions",
                       files["missing_frames"], files["total_frames"], files["expressions_with_missing_frames"])
    if not len(accumulator):
        logger.error("the dataset gave no expressions to score")

    out = Path(out_dir)
    os.makedirs(out, exist_ok=True)
    accumulator.write_csv(out / "per_expression.csv")
    with open(out / "summary.json", "w") as handle:
        json.dump(summary, handle, indent=2, allow_nan=False)
    return summary
