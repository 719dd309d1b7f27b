"""Before / after report of a GRPO run, from its ``metrics.jsonl``: did GRPO improve the task?

::

    python -m rl.report runs/quickstart          # prints the table, writes report.md and curves.png there

Table rows: the validation reward's accuracy term, video J&F (± its standard error) and its
referring / reasoning / multi-target splits, the distinct-answer fraction and response length
at validation, and the training accuracy. Columns: ``start`` = the validation of the starting
policy logged at step 0 (``trainer.val_before_train``), ``end`` = the last validation logged
after it (per metric), ``change`` = end - start (for J&F ± sqrt(se_start^2 + se_end^2), which
treats the two evaluations as independent: conservative, the same expressions are scored
twice). The training row compares the mean of the first and of the last 25 training steps.
Missing values print as ``-``.

``curves.png`` (matplotlib, Agg canvas; no display needed): training reward components per
step (smoothed), ``val/reward/accuracy``, ``val/J&F`` with its standard error as error bars
and the collapse metrics, each with a dashed line at step 0 (the start of GRPO). Called by
``launch.train`` after training, which also logs the table and the image to W&B at the last
step through :class:`rl.tracking.Tracker`; nothing here needs W&B.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from rl.tracking import read_metrics

TRAIN_WINDOW = 25                                   # training steps averaged at each end
TRAIN_KEY = "reward/accuracy"
TRAIN_LABEL = f"{TRAIN_KEY} (train, first / last {TRAIN_WINDOW} steps)"
JF_KEY, JF_STDERR_KEY = "val/J&F", "val/J&F_stderr"
VAL_KEYS = ("val/reward/accuracy", JF_KEY, "val/referring/J&F", "val/reasoning/J&F", "val/multi_target/J&F",
            "val/diagnostics/box_iou_before_segmentation", "val/diversity/distinct_answer_frac",
            "val/response_length/mean")
STDERR_KEYS = {JF_KEY: JF_STDERR_KEY}
COLUMNS = ("metric", "start", "end", "change")
# reward/* keys that are pool counters, not reward components.
NOT_COMPONENTS = ("reward/failed", "reward/worker_restarts")


def _num(value: Any) -> Optional[float]:
    """A finite number as float, else None (metrics.jsonl writes NaN / inf as strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _fmt(value: Optional[float], se: Optional[float] = None, sign: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:+.3f}" if sign else f"{value:.3f}"
    return f"{text} ± {se:.3f}" if se is not None else text


@dataclass
class ReportRow:
    """One metric: its value at the start and at the end (with standard errors where known)."""

    metric: str
    start: Optional[float] = None
    end: Optional[float] = None
    start_se: Optional[float] = None
    end_se: Optional[float] = None

    @property
    def change(self) -> Optional[float]:
        return None if self.start is None or self.end is None else self.end - self.start

    @property
    def change_se(self) -> Optional[float]:
        if self.change is None or self.start_se is None or self.end_se is None:
            return None
        return math.hypot(self.start_se, self.end_se)

    def cells(self) -> list[str]:
        return [self.metric, _fmt(self.start, self.start_se), _fmt(self.end, self.end_se),
                _fmt(self.change, self.change_se, sign=True)]


@dataclass
class Report:
    """The before/after rows of one run; ``start_step`` / ``end_step``: the validation steps used (None: none)."""

    rows: list[ReportRow]
    start_step: Optional[int]
    end_step: Optional[int]
    train_steps: int

    def row(self, metric: str) -> ReportRow:
        """The row of ``metric`` (a val key, or :data:`TRAIN_KEY` for the training row)."""
        for r in self.rows:
            if r.metric == metric or (metric == TRAIN_KEY and r.metric == TRAIN_LABEL):
                return r
        raise KeyError(metric)

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Column names and rows of formatted cells (the W&B table and the markdown table)."""
        return list(COLUMNS), [r.cells() for r in self.rows]

    def markdown(self, title: str = "GRPO report") -> str:
        start = "no step-0 validation" if self.start_step is None else f"validation at step {self.start_step}"
        end = "no validation after it" if self.end_step is None else f"last validation, step {self.end_step}"
        columns, rows = self.table()
        lines = [f"# {title}", "",
                 f"start = {start}; end = {end}; {self.train_steps} training steps. "
                 "J&F: ± standard error over expressions (x100).", "",
                 "| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        return "\n".join(lines) + "\n"


def _steps(rows: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the rows where ``key`` is a finite number, in row order."""
    pairs = [(int(r.get("step", 0)), _num(r.get(key))) for r in rows]
    pairs = [(s, v) for s, v in pairs if v is not None]
    return np.array([s for s, _ in pairs], dtype=np.int64), np.array([v for _, v in pairs], dtype=np.float64)


def build_report(rows: Sequence[dict[str, Any]], window: int = TRAIN_WINDOW) -> Report:
    """The report of a run's metric rows (``metrics.jsonl``, in logged order).

    Start: the step-0 row (the last one, if a fresh restart logged it twice). End: per metric,
    the last row after step 0 that has it. Training: rows with step >= 1 that have
    ``reward/accuracy``; start = mean of the first ``window``, end = mean of the last ``window``.
    """
    start_row = next((r for r in reversed(rows) if int(r.get("step", -1)) == 0), None)
    later = [r for r in rows if int(r.get("step", 0)) > 0]
    out: list[ReportRow] = []
    end_steps: list[int] = []
    for key in VAL_KEYS:
        row = ReportRow(key)
        se_key = STDERR_KEYS.get(key)
        if start_row is not None:
            row.start = _num(start_row.get(key))
            row.start_se = _num(start_row.get(se_key)) if se_key else None
        last = next((r for r in reversed(later) if _num(r.get(key)) is not None), None)
        if last is not None:
            row.end = _num(last[key])
            row.end_se = _num(last.get(se_key)) if se_key else None
            end_steps.append(int(last["step"]))
        out.append(row)
    _, train = _steps(later, TRAIN_KEY)
    out.append(ReportRow(TRAIN_LABEL, start=float(train[:window].mean()) if train.size else None,
                         end=float(train[-window:].mean()) if train.size else None))
    has_start = start_row is not None and any(k.startswith("val/") for k in start_row)
    return Report(out, 0 if has_start else None, max(end_steps) if end_steps else None, int(train.size))


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far); same length as ``values``."""
    if values.size == 0 or window <= 1:
        return values.astype(np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values.astype(np.float64)]))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - window)
    return (sums[idx] - sums[lo]) / (idx - lo)


def write_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """``curves.png``: 2 x 2 panels (training reward components, val accuracy, val J&F ± stderr, collapse)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [r for r in rows if int(r.get("step", 0)) > 0]
    fig = Figure(figsize=(12, 8))
    FigureCanvasAgg(fig)
    (ax_reward, ax_acc), (ax_jf, ax_div) = fig.subplots(2, 2)

    components = sorted({k for r in train for k in r if k.startswith("reward/") and k not in NOT_COMPONENTS})
    for key in components:
        steps, values = _steps(train, key)
        if steps.size:
            window = max(1, min(10, steps.size // 5))
            ax_reward.plot(steps, smooth(values, window), label=key.split("/", 1)[1])
    ax_reward.set_title("training reward components (smoothed)")

    for key, style in (("val/reward/accuracy", "o-"), ("val/score/mean", "s--")):
        steps, values = _steps(rows, key)
        if steps.size:
            ax_acc.plot(steps, values, style, label=key)
    ax_acc.set_title("validation reward")

    steps, values = _steps(rows, JF_KEY)
    if steps.size:
        errors = [_num(r.get(JF_STDERR_KEY)) for r in rows if _num(r.get(JF_KEY)) is not None]
        ax_jf.errorbar(steps, values, yerr=[e or 0.0 for e in errors], fmt="o-", capsize=4, label="J&F ± stderr")
    for key in ("val/referring/J&F", "val/reasoning/J&F", "val/multi_target/J&F"):
        split_steps, split_values = _steps(rows, key)
        if split_steps.size:
            ax_jf.plot(split_steps, split_values, ".:", label=key.split("/")[1])
    ax_jf.set_title("video J&F (x100)")

    for key in ("diversity/zero_variance_group_frac", "diversity/valid_answer_frac"):
        div_steps, div_values = _steps(train, key)
        if div_steps.size:
            ax_div.plot(div_steps, smooth(div_values, max(1, min(10, div_steps.size // 5))), label=key)
    div_steps, div_values = _steps(rows, "val/diversity/distinct_answer_frac")
    if div_steps.size:
        ax_div.plot(div_steps, div_values, "o-", label="val/diversity/distinct_answer_frac")
    ax_div.set_title("collapse: equal-reward groups, valid and distinct answers")

    for ax in (ax_reward, ax_acc, ax_jf, ax_div):
        ax.axvline(0, color="grey", linestyle="--", linewidth=1, label="GRPO start")
        ax.set_xlabel("step")
        if len(ax.get_lines()) + len(ax.containers) <= 1:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def write_report(run_dir: str | Path, tracker: Any = None, step: Optional[int] = None, plot: bool = True,
                 echo: Callable[[str], None] = print) -> Report:
    """Build the report of ``run_dir``, print it, write ``report.md`` (and ``curves.png``) there; with a
    :class:`~rl.tracking.Tracker`, also log ``report/table`` and ``report/curves`` to W&B at ``step``."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise FileNotFoundError(f"no metrics in {run_dir / 'metrics.jsonl'}")
    report = build_report(rows)
    text = report.markdown(f"GRPO report: {run_dir}")
    (run_dir / "report.md").write_text(text)
    echo(text)
    curves = write_curves(rows, run_dir / "curves.png") if plot else None
    if tracker is not None:
        step = int(step if step is not None else max(int(r.get("step", 0)) for r in rows))
        columns, cells = report.table()
        tracker.log_table("report/table", columns, cells, step)
        if curves is not None:
            tracker.log_image_file("report/curves", curves, step)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    from data.cli_help import doc_parser

    parser = doc_parser("python -m rl.report", __doc__)
    parser.add_argument("run_dir", help="run directory holding metrics.jsonl (e.g. runs/quickstart)")
    parser.add_argument("--no-plot", action="store_true", help="skip curves.png")
    args = parser.parse_args(argv)
    try:
        write_report(args.run_dir, plot=not args.no_plot)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir)
    print(f"wrote {run_dir / 'report.md'}" + ("" if args.no_plot else f" and {run_dir / 'curves.png'}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
