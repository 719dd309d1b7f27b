"""Score a JSONL file of rollouts with one reward.

    python -m rewards.score --reward visionreasoner --input rollouts.jsonl [--param key=value ...]

Each line: ``{"response": str, "ground_truth": {...}, "params": {...}?}``.
Prints one line of components per rollout, then a summary table (mean / min /
max per component). A bad line never stops the run: whatever goes wrong on it
(invalid or too deeply nested JSON, missing keys, malformed ground truth or
params, an exception inside the reward) is reported on stderr with its line
number and the exception type, counted, and the next line is scored. The
summary always comes last (also after Ctrl-C, for the lines done so far); the
exit status is 1 when any line was bad, 2 when the file cannot be read, 130
when interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from rewards import REWARD_NAMES
from rewards.registry import build_params, compute


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``["iou_threshold=0.6", "base.max_objects=10"]`` -> dict (values parsed as JSON when possible)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise argparse.ArgumentTypeError(f"--param expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def score_line(line: str, reward: str, overrides: dict[str, Any], use_models: bool) -> dict[str, float]:
    """Score one JSONL line (raises ``ValueError``/``TypeError``/``KeyError``/``OSError`` on a bad line)."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("line is not a JSON object")
    for key in ("response", "ground_truth"):
        if key not in record:
            raise KeyError(f"missing key '{key}'")
    params = dict(record.get("params") or {})
    params.update(overrides)
    return compute(reward, record["response"], record["ground_truth"], use_default_models=use_models, **params)


#: Longest error message printed per bad line (an exception may quote the whole line).
MAX_ERROR_CHARS = 300


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " ..."


def summary_table(rows: list[dict[str, float]]) -> str:
    """Mean / min / max of every component over ``rows``."""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    width = max([len(k) for k in keys] + [9])
    lines = [f"{'component':<{width}}  {'mean':>10} {'min':>10} {'max':>10}"]
    for key in keys:
        values = [row[key] for row in rows if key in row]
        lines.append(f"{key:<{width}}  {sum(values) / len(values):>10.4f} {min(values):>10.4f} {max(values):>10.4f}")
    return "\n".join(lines)


def run(reward: str, path: Path, overrides: dict[str, Any], use_models: bool, quiet: bool, out: TextIO) -> int:
    rows: list[dict[str, float]] = []
    bad = 0
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    interrupted, number = False, 0
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:  # any exception is this line's problem (RecursionError, a crash inside the reward, ...)
                    result = score_line(line, reward, overrides, use_models)
                    parts = " ".join(f"{k}={float(v):.4g}" for k, v in result.items())
                except Exception as exc:  # noqa: BLE001 - reported per line, never stops the file
                    bad += 1
                    print(f"line {number}: bad rollout: {_error_text(exc)}", file=sys.stderr)
                    continue
                rows.append(result)
                if not quiet:
                    print(f"line {number}: {parts}", file=out)
        except KeyboardInterrupt:
            interrupted = True
            print(f"interrupted after line {number}", file=sys.stderr)
    print(f"\nreward {reward}: {len(rows)} scored, {bad} bad line(s)", file=out)
    if rows:
        print(summary_table(rows), file=out)
    if interrupted:
        return 130
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    from data.cli_help import doc_parser

    parser = doc_parser("python -m rewards.score", __doc__)
    parser.add_argument("--reward", required=True, choices=REWARD_NAMES)
    parser.add_argument("--input", required=True, type=Path, help="JSONL of {response, ground_truth, params?}")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="reward parameter override")
    parser.add_argument("--no-models", action="store_true", help="do not use the package-default segmenter/propagator")
    parser.add_argument("--quiet", action="store_true", help="only print the summary")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.param)
        build_params(args.reward, **overrides)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    return run(args.reward, args.input, overrides, not args.no_models, args.quiet, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
