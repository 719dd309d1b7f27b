"""Evaluation CLI.

Sub-commands::

    python -m launch.evaluate score --dataset-root ROOT --format mevis|revos|refytvos|davis \\
        --pred DIR --out OUT [--split NAME] [--workers N] [--bound-th 0.008] [--threshold T] [--no-progress]
    python -m launch.evaluate run [checkpoint=PATH] dataset.root=ROOT dataset.format=FORMAT \\
        [dataset.split=NAME] [out=OUT] [max_videos=N] [recipe=NAME] [eval.sampler=...] [eval.propagator=...] ...

``score`` scores an existing prediction folder ``DIR/<video>/<expression id>/<frame>.png``
(binary masks, 0/255 or 0/1, or one-object palette PNGs; soft maps only with
``--threshold T``, see :mod:`rl.eval.prediction_io`) and writes ``OUT/per_expression.csv`` and
``OUT/summary.json`` (J, F, J&F x100; ReVOS adds referring / reasoning /
overall and R). See :mod:`rl.eval.scoring`. Exit status 2, nothing written, for a
missing or empty prediction folder or a PNG that is not a valid mask (named).

``run`` evaluates a policy end to end (:class:`rl.eval.pipeline.EvalPipeline`): frame
sampler -> grounding -> keyframe segmenter -> propagation -> the same scoring, writing
the masks, ``per_expression.csv``, ``diagnostics.csv`` and ``summary.json`` (with
per-stage timing) to OUT. Arguments are ``key=value`` config overrides validated by
:mod:`rl.config` (default recipe ``quickstart``, as in the other launchers), plus the
shorthands ``checkpoint`` (``eval.checkpoint``), ``dataset.root`` / ``dataset.format`` /
``dataset.split`` (``eval.dataset_*``, FORMAT one of mevis, revos, refytvos, davis,
synthetic), ``out`` (``eval.out_dir``) and ``max_videos`` (``eval.max_videos``). Without
a checkpoint no policy is loaded: GT cues, and ``eval.sampler=auto`` picks the oracle
keyframe. A synthetic data set is generated when absent (split ``valid`` by default).
Before loading anything, ``run`` checks the files it will read (:mod:`rl.preflight`: the
checkpoint and ``eval.sampler_model`` are HF folders with config.json and weights, the data
set has the files its reader opens, the SAM2 / XMem checkpoints exist): missing ones are one
``config error`` listing every key and path, exit status 2.

``python -m launch.evaluate run --help`` lists the ``run`` arguments and config groups.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

from rl.eval.boundary import DEFAULT_BOUND_TH

SCORE_FORMATS = ("mevis", "revos", "refytvos", "davis")
EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from data.cli_help import doc_parser

    parser = doc_parser("python -m launch.evaluate", __doc__)
    sub = parser.add_subparsers(dest="command", metavar="{score,run}")
    sub.required = True

    score = sub.add_parser("score", help="score an existing prediction folder against a dataset's ground truth")
    score.add_argument("--dataset-root", required=True,
                       help="folder holding meta_expressions.json (and mask_dict.json or Annotations/)")
    score.add_argument("--format", required=True, choices=SCORE_FORMATS, dest="dataset_format")
    score.add_argument("--pred", required=True, help="prediction folder <video>/<expression id>/<frame>.png")
    score.add_argument("--out", required=True, help="output folder for per_expression.csv and summary.json")
    score.add_argument("--split", default=None, help="dataset split (default: the reader's default)")
    score.add_argument("--workers", type=_positive_int, default=1, help="processes over videos (default 1)")
    score.add_argument("--bound-th", type=float, default=DEFAULT_BOUND_TH,
                       help="F boundary tolerance: fraction of the diagonal (<1) or pixels (>=1); default 0.008")
    score.add_argument("--threshold", type=float, default=None,
                       help="binarise soft grey prediction maps: foreground = value >= T x full scale, T in (0, 1) "
                            "(default: only binary masks are accepted)")
    score.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    score.set_defaults(handler=_cmd_score)

    run = sub.add_parser("run", help="run inference on a dataset, then score it (key=value arguments)",
                         description="key=value arguments: checkpoint=PATH dataset.root=ROOT dataset.format=FORMAT "
                                     "[dataset.split=NAME] [out=OUT] [max_videos=N] [recipe=NAME] [eval.*=...]")
    run.add_argument("rest", nargs=argparse.REMAINDER, help="key=value overrides")
    run.set_defaults(handler=_cmd_run)
    return parser


def _cmd_score(args: argparse.Namespace) -> int:
    from rl.eval.scoring import run_score

    try:
        summary = run_score(
            args.dataset_root, args.dataset_format, args.pred, args.out,
            split=args.split, workers=args.workers, bound_th=args.bound_th, progress=not args.no_progress,
            threshold=args.threshold,
        )
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
        print(f"evaluate score: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    brief = {k: summary[k] for k in ("J", "F", "J&F", "R", "referring", "reasoning", "overall") if k in summary}
    brief["num_expressions"] = summary.get("num_expressions")
    brief["prediction_files"] = {k: v for k, v in summary["prediction_files"].items() if k != "messages"}
    print(json.dumps(brief, indent=2))
    print(f"wrote {args.out}/per_expression.csv and {args.out}/summary.json", file=sys.stderr)
    return 0


#: ``run`` shorthands -> config keys.
RUN_ALIASES = {
    "checkpoint": "eval.checkpoint",
    "dataset.root": "eval.dataset_root",
    "dataset.format": "eval.dataset_format",
    "dataset.split": "eval.dataset_split",
    "out": "eval.out_dir",
    "max_videos": "eval.max_videos",
}


def run_overrides(argv: Sequence[str]) -> list[str]:
    """``key=value`` arguments with the ``run`` shorthands replaced by their config keys."""
    out = []
    for item in argv:
        key, sep, value = item.partition("=")
        if sep and key in RUN_ALIASES:
            item = f"{RUN_ALIASES[key]}={value}"
        out.append(item)
    return out


def _absolute(path: str) -> str:
    from pathlib import Path

    return str(Path(path).resolve()) if path else path


def _cmd_run(args: argparse.Namespace) -> int:
    from launch.common import config_from_argv, missing_inputs
    from rl.config import ConfigError
    from rl.eval.pipeline import EvalPipeline, check_eval_config, resolve_dataset

    argv = [a for a in args.rest if a != "--"]
    bad = [a for a in argv if "=" not in a]
    if bad:
        print(f"evaluate run: arguments must be key=value, got {bad}", file=sys.stderr)
        return EXIT_USAGE
    cfg, _ = config_from_argv(run_overrides(argv), check_files=False)
    missing = missing_inputs(cfg, training=False, evaluation=True, extra_sets=False)  # checkpoints, data, weights
    if missing:
        print(missing, file=sys.stderr)
        return EXIT_USAGE
    ev = cfg.eval
    ev.checkpoint, ev.dataset_root, ev.sampler_model, ev.xmem_checkpoint = map(
        _absolute, (ev.checkpoint, ev.dataset_root, ev.sampler_model, ev.xmem_checkpoint))
    ev.segmenter.checkpoint = _absolute(ev.segmenter.checkpoint)
    ev.out_dir = _absolute(ev.out_dir or f"{cfg.trainer.run_dir}/eval")
    try:
        check_eval_config(cfg)
        pipeline = EvalPipeline(cfg, ev.checkpoint or None)       # checks the checkpoint before any data work
        root, fmt, split = resolve_dataset(cfg)
        try:
            summary = pipeline.run(root, fmt, split, ev.out_dir, max_videos=ev.max_videos)
        finally:
            pipeline.close()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
        print(f"evaluate run: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    keys = ("J", "F", "J&F", "R", "referring", "reasoning", "num_expressions", "pipeline", "timing_s", "timing_share",
            "diagnostics", "skipped_videos")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
    print(f"wrote {ev.out_dir}/ (masks, per_expression.csv, diagnostics.csv, summary.json)", file=sys.stderr)
    return 0


RUN_USAGE = ("run [checkpoint=PATH] dataset.root=ROOT dataset.format=mevis|revos|refytvos|davis|synthetic "
             "[dataset.split=NAME] [out=OUT] [max_videos=N] [recipe=NAME] [profile=NAME] [eval.*=...]")
RUN_NOTES = ("run shorthands: " + ", ".join(f"{k} = {v}" for k, v in RUN_ALIASES.items()) + ". Any other key=value "
             "is a config override (eval.sampler=..., eval.propagator=..., eval.segmenter.checkpoint=...). "
             "Score an existing prediction folder instead: python -m launch.evaluate score --help.")


def run_help() -> str:
    """``--help`` of the ``run`` sub-command (``key=value`` arguments, so not argparse's)."""
    from data.cli_help import keyvalue_help

    doc = __doc__.split("``run`` evaluates", 1)[1].split("\n\n")[0]
    return keyvalue_help("python -m launch.evaluate", "``run`` evaluates" + doc, RUN_USAGE, notes=RUN_NOTES)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from data.cli_help import print_help, wants_help

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and wants_help(argv[1:]):
        return print_help(run_help())
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
