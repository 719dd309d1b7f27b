"""Evaluation CLI.

Sub-commands::

    python -m launch.evaluate score --dataset-root ROOT --format mevis|revos|refytvos|davis \\
        --pred DIR --out OUT [--split NAME] [--workers N] [--bound-th 0.008] [--no-progress]
    python -m launch.evaluate run ...        (inference + scoring; not implemented yet)

``score`` scores an existing prediction folder ``DIR/<video>/<expression id>/<frame>.png``
(non-zero = foreground) and writes ``OUT/per_expression.csv`` and
``OUT/summary.json`` (J, F, J&F x100; ReVOS adds referring / reasoning /
overall and R). See :mod:`rl.eval.scoring`.
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
    parser = argparse.ArgumentParser(prog="python -m launch.evaluate", description=__doc__.split("\n\n")[0])
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
    score.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    score.set_defaults(handler=_cmd_score)

    run = sub.add_parser("run", help="run inference on a dataset, then score it (not implemented yet)")
    run.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    run.set_defaults(handler=_cmd_run)
    return parser


def _cmd_score(args: argparse.Namespace) -> int:
    from rl.eval.scoring import run_score

    try:
        summary = run_score(
            args.dataset_root, args.dataset_format, args.pred, args.out,
            split=args.split, workers=args.workers, bound_th=args.bound_th, progress=not args.no_progress,
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


def _cmd_run(args: argparse.Namespace) -> int:
    print("evaluate run: not implemented yet (inference + scoring lands in a later issue); "
          "to score existing predictions use: python -m launch.evaluate score ...", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
