"""Build training samples (JSONL or parquet) from a data set root.

Command line::

    python -m data.build data.root=PATH data.format=mevis|revos|refytvos|davis|synthetic \\
        data.task=ktg|aks|veason out=FILE.jsonl|FILE.parquet \\
        [data.split=train] [data.input_size=[840,840]] [data.max_samples=N] [data.seed=0] \\
        [data.val_fraction=0.125] [reward.name=NAME] [recipe=NAME]

``data.*`` keys go through :func:`rl.config.load_config` (validated, unknown keys
rejected); ``out=`` (default: ``data.samples_path``) is handled here. For
``data.format=synthetic`` the synthetic data set is generated into
``<data.root>/<data.split>/`` first when it is missing or was made with another
``data.synthetic`` config (an up-to-date one is reused).

Output: ONE file holding all records (schema: :mod:`data.samples`), each with
``"split": "train" | "val"``. The split is by video: a seeded ``data.val_fraction``
of the videos is held out (at least one when the fraction is > 0 and there are two
or more videos; never all). Read with ``load_samples(path, split="train")``.
Model-input images are written to ``<out dir>/images/<dataset>/<video>/<frame>_<W>x<H>.png``.

Bad data never passes silently: a video, frame or mask that cannot be read is
logged with its path, skipped and counted by reason in the :class:`BuildReport`
(``skipped``); expressions that do not fit the task (e.g. no target for AKS /
Veason) are counted under ``filtered``. The CLI prints the summary and exits 1
when nothing was built.

Bad text never stops a build: an expression text holding invalid code points (a
``"\\udc80"`` escape or bytes that are not UTF-8 in the metadata) is repaired by
the reader (U+FFFD, see :mod:`data.text`) and counted under ``repaired``; a record
that still holds text that cannot be written as UTF-8 (e.g. in a video id) is
skipped as ``text_invalid``, naming the metadata file. Records are streamed to
``<out stem>.partial.jsonl`` as they are built (:mod:`data.partial`): a failure
after that (full disk, Ctrl-C, ...) keeps them there and the CLI names that
file (exit 2); a finished build writes the output atomically and deletes it.

``max_samples`` caps the number of records (seeded random choice of expressions;
AKS keeps A:B = 1:1). AKS: every expression with a target offers A (its keyframe)
and, if the target is absent on some frame, B (a zero-area frame); equally many A
and B are kept, singles:multis = ``data.single_to_multi_ratio``:1 within each.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from data import samples as S
from data.partial import PartialSampleFile, encode_record, partial_path
from data.readers.base import TEXT_REPAIRS_KEY
from data.text import clean_strings, is_valid_text

logger = logging.getLogger("data.build")

#: Parquet schema metadata key listing the columns stored as JSON strings.
PARQUET_JSON_COLUMNS_KEY = b"vrs_rl.json_columns"
#: Keys every record must have (checked by :func:`load_samples`).
REQUIRED_KEYS = ("id", "task", "images", "prompt", "ground_truth")
#: Problems kept verbatim in a report (all are counted).
MAX_PROBLEMS_KEPT = 200

__all__ = ["BuildReport", "build_samples", "load_samples", "write_samples", "split_videos", "partial_path", "main"]


def _printable(text: str) -> str:
    """``text`` with invalid code points as backslash escapes (safe to print and log)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class BuildReport:
    """What a build produced and what it skipped.

    ``skipped``: bad data by reason (``video_missing`` / ``video_unreadable``,
    ``frame_missing`` / ``frame_unreadable``, ``mask_missing`` / ``mask_unreadable``,
    ``no_ground_truth``, ``text_invalid``); ``filtered``: fine data that does not
    fit the task (``no_target``, ``no_zero_area_frame``, ``aks_balance``,
    ``max_samples``); ``repaired``: data used after a repair (``invalid_text``: invalid
    code points of an expression replaced by U+FFFD); ``problems``: ``"reason: path:
    message"`` lines of the skips and repairs.
    """

    out_path: Path
    task: str
    built: int = 0
    by_split: Counter = field(default_factory=Counter)
    by_answer: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    videos: int = 0

    def _problem(self, reason: str, message: str, path: Optional[str]) -> str:
        line = _printable(f"{reason}: {path}: {message}" if path else f"{reason}: {message}")
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(line)
        return line

    def add_skip(self, reason: str, message: str, path: Optional[str] = None) -> None:
        self.skipped[reason] += 1
        self._problem(reason, message, path)
        logger.warning("skipped (%s) %s", reason, _printable(f"{path}: {message}" if path else message))

    def add_repair(self, reason: str, message: str, path: Optional[str] = None) -> None:
        self.repaired[reason] += 1
        self._problem(reason, message, path)  # the reader logged it when it read the text

    def summary(self) -> str:
        def fmt(c: Counter) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        lines = [
            f"built {self.built} {self.task} samples from {self.videos} videos -> {self.out_path}",
            f"  by split: {fmt(self.by_split)}",
            f"  skipped (bad data): {sum(self.skipped.values())} ({fmt(self.skipped)})",
            f"  filtered (not applicable): {sum(self.filtered.values())} ({fmt(self.filtered)})",
        ]
        if self.repaired:
            lines.append(f"  repaired (used after a fix): {sum(self.repaired.values())} ({fmt(self.repaired)})")
        if self.by_answer:
            lines.insert(2, f"  by answer: {fmt(self.by_answer)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"out_path": str(self.out_path), "task": self.task, "built": self.built, "videos": self.videos,
                "by_split": dict(self.by_split), "by_answer": dict(self.by_answer), "skipped": dict(self.skipped),
                "filtered": dict(self.filtered), "repaired": dict(self.repaired), "problems": list(self.problems)}


# ------------------------------------------------------------------------- split


def split_videos(video_ids: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """Seeded set of held-out video ids: ``round(val_fraction * n)``, at least 1 if the fraction
    is > 0 and n >= 2, at most n - 1. Independent of the order of ``video_ids``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    ids = sorted(set(video_ids))
    n = len(ids)
    if val_fraction == 0.0 or n < 2:
        return set()
    k = min(n - 1, max(1, int(round(val_fraction * n))))
    perm = np.random.default_rng([int(seed), 0x5A1]).permutation(n)
    return {ids[i] for i in perm[:k]}


# ------------------------------------------------------------------------ io


def _json_columns(records: Sequence[dict[str, Any]]) -> list[str]:
    cols = set()
    for rec in records:
        for key, value in rec.items():
            if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
                cols.add(key)
    return sorted(cols)


def write_samples(records: Sequence[dict[str, Any]], out_path: str | Path) -> Path:
    """Write records as JSONL (``.jsonl``) or parquet (``.parquet``), atomically (temp file + rename).

    Parquet: scalar and flat-list fields are native columns; fields holding dicts or nested
    lists (``ground_truth``) are JSON strings, listed in the schema metadata so that
    :func:`load_samples` restores them. Both formats load to identical records. A record
    holding text that cannot be written as UTF-8 raises ``ValueError`` naming it (nothing is
    written then; :func:`build_samples` skips such records before they get here).
    """
    out = Path(out_path)
    if out.suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"output must end in .jsonl or .parquet, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if out.suffix == ".jsonl":
            with open(tmp, "wb") as handle:
                for i, rec in enumerate(records):
                    handle.write(_encoded(rec, i, out))
        else:
            for i, rec in enumerate(records):
                _encoded(rec, i, out)
            import pyarrow as pa
            import pyarrow.parquet as pq

            json_cols = _json_columns(records)
            rows = [{k: (json.dumps(v, ensure_ascii=False) if k in json_cols else v) for k, v in rec.items()}
                    for rec in records]
            table = pa.Table.from_pylist(rows)
            table = table.replace_schema_metadata({PARQUET_JSON_COLUMNS_KEY: json.dumps(json_cols).encode()})
            pq.write_table(table, tmp)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


def _encoded(record: dict[str, Any], index: int, out: Path) -> bytes:
    try:
        return encode_record(record)
    except UnicodeEncodeError as exc:
        raise ValueError(_printable(f"{out}: record {index} ({record.get('id', '?')!r}) holds text that is not "
                                    f"valid Unicode: {exc}")) from None


def load_samples(path: str | Path, split: Optional[str] = None) -> list[dict[str, Any]]:
    """Records of a JSONL or parquet sample file (optionally only ``split`` "train"/"val").

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file
    and line / row for malformed content. Invalid code points (``"\\udc80"`` escapes, bytes
    that are not UTF-8) are replaced by U+FFFD in every string, with a warning naming the
    line / row (:mod:`data.text`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sample file not found: {path}")
    records: list[dict[str, Any]] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise ValueError(f"cannot read parquet sample file {path}: {exc}") from None
        meta = table.schema.metadata or {}
        json_cols = json.loads(meta.get(PARQUET_JSON_COLUMNS_KEY, b"[]"))
        for i, row in enumerate(table.to_pylist()):
            for col in json_cols:
                if row.get(col) is not None:
                    try:
                        row[col] = json.loads(row[col])
                    except (TypeError, ValueError) as exc:
                        raise ValueError(f"{path}: row {i} column {col!r} is not valid JSON: {exc}") from None
            row = {k: v for k, v in row.items() if v is not None or k not in json_cols}
            records.append(_clean_record(row, f"{path}: row {i}"))
    elif path.suffix in (".jsonl", ".json"):
        with open(path, "r", encoding="utf-8", errors="surrogateescape") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON: {exc}") from None
                if not isinstance(rec, dict):
                    raise ValueError(f"{path}:{lineno}: a record must be a JSON object")
                records.append(_clean_record(rec, f"{path}:{lineno}"))
    else:
        raise ValueError(f"sample file must end in .jsonl or .parquet, got {path}")
    for i, rec in enumerate(records):
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:
            raise ValueError(f"{path}: record {i} ({rec.get('id', '?')}) lacks keys {missing}")
    if split is not None:
        records = [r for r in records if r.get("split") == split]
    return records


def _clean_record(record: dict[str, Any], where: str) -> dict[str, Any]:
    cleaned, replaced = clean_strings(record)
    if replaced:
        logger.warning("%s: %d invalid code point(s) replaced by U+FFFD", _printable(where), replaced)
    return cleaned


# --------------------------------------------------------------------- dataset


def _open_reader(cfg: Any):
    """Open ``cfg.root`` (generating the synthetic data set there first if needed)."""
    from data.readers import open_dataset

    if cfg.format != "synthetic":
        return open_dataset(cfg.root, cfg.format, split=cfg.split)
    from data.synthetic import generate_synthetic_dataset

    # Generates <root>/<split>/ when missing or made with another data.synthetic config;
    # reuses it when up to date; refuses to overwrite a folder it did not write.
    folder = generate_synthetic_dataset(cfg.root, cfg.synthetic, cfg.split)
    return open_dataset(folder, cfg.format, split=cfg.split)


class _VideoCache:
    """Small LRU of opened :class:`VideoSample` objects (opening is cheap, but not free)."""

    def __init__(self, reader: Any, size: int = 8):
        self.reader, self.size = reader, size
        self._items: OrderedDict[str, Any] = OrderedDict()

    def __getitem__(self, video_id: str) -> Any:
        if video_id in self._items:
            self._items.move_to_end(video_id)
            return self._items[video_id]
        sample = self.reader[video_id]
        self._items[video_id] = sample
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return sample


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="it", dynamic_ncols=True)


def _invalid_ids(reader: Any, vid: str, sample: Any, report: BuildReport) -> set[str]:
    """Expressions whose video id or expression id is not valid text (counted ``text_invalid`` skips).

    Ids name files and records, so they are not repaired like expression texts are.
    """
    bad = {e for e in sample.expressions if not (is_valid_text(vid) and is_valid_text(e))}
    for exp_id in sorted(bad, key=repr):
        report.add_skip("text_invalid", f"video {vid!r} expression {exp_id!r}: id holds invalid code points",
                        str(getattr(reader, "meta_path", "")) or None)
    return bad


def _scan(reader: Any, videos: Sequence[str], report: BuildReport, progress: bool) -> dict[str, dict[str, np.ndarray]]:
    """Pass 1: union target areas per expression of every readable video (text repairs counted)."""
    areas_by_video: dict[str, dict[str, np.ndarray]] = {}
    source = str(getattr(reader, "meta_path", "")) or None
    for vid in _progress(videos, len(videos), "scan videos", progress):
        try:
            sample = reader[vid]
        except S.DATA_EXCEPTIONS as exc:
            reason = "video_missing" if isinstance(exc, FileNotFoundError) else "video_unreadable"
            report.add_skip(reason, f"video {vid!r}: {type(exc).__name__}: {exc}", S.error_path(exc))
            continue
        if not getattr(sample, "has_masks", True):
            report.add_skip("no_ground_truth", f"video {vid!r} has no ground-truth masks "
                            f"({len(sample.expressions)} expressions)")
            continue
        invalid = _invalid_ids(reader, vid, sample, report)
        if len(invalid) == len(sample.expressions):
            continue
        for exp_id, replaced in sample.extra.get(TEXT_REPAIRS_KEY, {}).items():
            if exp_id not in invalid:
                report.add_repair("invalid_text", f"video {vid!r} expression {exp_id!r}: {replaced} invalid code "
                                  "point(s) in the text replaced by U+FFFD", source)
        areas, failed = S.expression_areas(sample)
        for exp_id, skip in failed.items():
            report.add_skip(skip.reason, f"video {vid!r} expression {exp_id!r}: {skip}", skip.path)
        areas_by_video[vid] = {e: a for e, a in areas.items() if e not in invalid}
    report.videos = len(areas_by_video)
    return areas_by_video


@dataclass
class _RecordSink:
    """Finishes each built record: sets its ``split`` and streams it to the partial file.

    A record that cannot be written as UTF-8 raises a ``text_invalid`` :class:`SampleSkip`
    naming ``source`` (the metadata file).
    """

    partial: PartialSampleFile
    val_videos: set[str]
    source: Optional[str] = None

    def add(self, record: dict[str, Any]) -> None:
        record["split"] = "val" if record["video_id"] in self.val_videos else "train"
        try:
            self.partial.add(record)
        except UnicodeEncodeError as exc:
            raise S.SampleSkip("text_invalid", f"record {record.get('id')!r} holds text that is not valid "
                               f"Unicode: {exc}", self.source) from None


def _build_until(
    items: Sequence[Any], limit: int, make: Callable[[Any], dict[str, Any]], report: BuildReport, desc: str,
    progress: bool, sink: _RecordSink,
) -> tuple[list[dict[str, Any]], int]:
    """Build records from ``items`` in order until ``limit`` are built; skips are counted.

    Each record goes through ``sink`` as soon as it is built. Returns ``(records, number
    of items not tried)``.
    """
    out: list[dict[str, Any]] = []
    bar = _progress(None, min(limit, len(items)), desc, progress) if progress else None
    used = 0
    for item in items:
        if len(out) >= limit:
            break
        used += 1
        try:
            record = make(item)
            sink.add(record)
            out.append(record)
            if bar is not None:
                bar.update(1)
        except S.SampleSkip as skip:
            report.add_skip(skip.reason, str(skip), skip.path)
    if bar is not None:
        bar.close()
    return out, len(items) - used


def _build_per_expression(
    areas_by_video: dict[str, dict[str, np.ndarray]], cache: _VideoCache, writer: S.FrameImageWriter,
    opts: S.SampleOptions, limit: int, report: BuildReport, progress: bool, sink: _RecordSink,
) -> list[dict[str, Any]]:
    """KTG / Veason: one record per expression, in a seeded random order, until ``limit``."""
    plans = []
    for vid, areas in areas_by_video.items():
        exps = cache[vid].expressions
        for exp_id, a in areas.items():
            if opts.task == "veason" and (not exps[exp_id].obj_ids or int(a.max()) <= 0):
                report.filtered["no_target"] += 1
                continue
            plans.append((vid, exp_id, a))
    rng = np.random.default_rng([int(opts.seed), 0xB11D])
    plans = [plans[i] for i in rng.permutation(len(plans))]
    build = S.build_ktg_record if opts.task == "ktg" else S.build_veason_record
    records, untried = _build_until(
        plans, limit, lambda p: build(cache[p[0]], p[1], p[2], writer, opts), report, f"build {opts.task}", progress,
        sink)
    report.filtered["max_samples"] += untried
    return records


def _build_aks(
    areas_by_video: dict[str, dict[str, np.ndarray]], cache: _VideoCache, writer: S.FrameImageWriter,
    opts: S.SampleOptions, cfg: Any, limit: int, report: BuildReport, progress: bool, sink: _RecordSink,
) -> list[dict[str, Any]]:
    """AKS: balanced A/B candidates (:func:`data.samples.balance_aks`), records interleaved A, B, A, B, ..."""
    candidates: list[S.AksCandidate] = []
    for vid, areas in areas_by_video.items():
        sample = cache[vid]
        for exp_id, a in areas.items():
            found = S.aks_candidates(sample, exp_id, a, opts.seed)
            if not found:
                report.filtered["no_target"] += 1
            elif len(found) == 1:
                report.filtered["no_zero_area_frame"] += 1
            candidates.extend(found)
    a_list, b_list = S.balance_aks(candidates, cfg.single_to_multi_ratio, opts.seed)
    report.filtered["aks_balance"] += len(candidates) - len(a_list) - len(b_list)
    per_class = len(a_list) if limit == sys.maxsize else min(len(a_list), limit // 2)
    make = lambda c: S.build_aks_record(cache[c.video_id], c, writer, opts)  # noqa: E731
    built_a, untried_a = _build_until(a_list, per_class, make, report, "build aks A", progress, sink)
    built_b, untried_b = _build_until(b_list, per_class, make, report, "build aks B", progress, sink)
    n = min(len(built_a), len(built_b))
    report.filtered["aks_balance"] += len(built_a) + len(built_b) - 2 * n
    report.filtered["max_samples"] += untried_a + untried_b
    return [r for pair in zip(built_a[:n], built_b[:n]) for r in pair]


def build_samples(
    cfg: Any,
    out_path: str | Path,
    reward: Optional[str] = None,
    image_dir: str | Path | None = None,
    progress: bool = True,
    **option_overrides: Any,
) -> BuildReport:
    """Build the records of ``cfg.task`` from data set ``cfg.root`` and write them to ``out_path``.

    cfg: a :class:`rl.config.DataConfig`. reward: reward name stored in the records (must fit
    the task; None = the task's default). image_dir: where model-input images go (default
    ``<out_path dir>/images``). option_overrides: extra :class:`data.samples.SampleOptions`
    fields (``tau_neg``, ``cues_from``, ``negative_points``). Returns the :class:`BuildReport`
    (the file holds train and val records, see the module docstring). Records are streamed to
    :func:`partial_path` while they are built; on any failure after that the file is kept
    (the exception gets a note naming it), after success it is deleted.
    """
    out_path = Path(out_path)
    opts = S.SampleOptions.from_data_config(cfg, reward=reward, **option_overrides)
    report = BuildReport(out_path=out_path, task=opts.task)
    writer = S.FrameImageWriter(image_dir if image_dir is not None else out_path.parent / "images")
    reader = _open_reader(cfg)
    videos = reader.video_ids()
    val_videos = split_videos(videos, cfg.val_fraction, cfg.seed)
    areas_by_video = _scan(reader, videos, report, progress)
    cache = _VideoCache(reader)
    limit = cfg.max_samples if cfg.max_samples > 0 else sys.maxsize
    sink = _RecordSink(PartialSampleFile(out_path), val_videos, str(getattr(reader, "meta_path", "")) or None)
    try:
        if opts.task == "aks":
            records = _build_aks(areas_by_video, cache, writer, opts, cfg, limit, report, progress, sink)
        else:
            records = _build_per_expression(areas_by_video, cache, writer, opts, limit, report, progress, sink)
        for rec in records:
            report.by_split[rec["split"]] += 1
            if opts.task == "aks":
                report.by_answer[rec["ground_truth"]["answer"]] += 1
        report.filtered = Counter({k: v for k, v in report.filtered.items() if v})
        write_samples(records, out_path)
    except BaseException as exc:
        kept = sink.partial.keep()
        if kept is not None:
            note = f"{sink.partial.count} records built before the failure are kept in {kept}"
            logger.error("building %s failed (%s); %s", out_path, type(exc).__name__, note)
            exc.add_note(note)
        raise
    sink.partial.discard()
    report.built = len(records)
    return report


# ------------------------------------------------------------------------- CLI

_USAGE = __doc__.split("Output:")[0].strip()
_HELP_USAGE = ("data.root=PATH data.format=mevis|revos|refytvos|davis|synthetic data.task=ktg|aks|veason "
               "out=FILE.jsonl|FILE.parquet [data.KEY=VALUE ...] [reward.name=NAME] [recipe=NAME]")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the process exit code (0 ok, 1 nothing built, 2 usage / config / data / I/O
    error; the message names the ``.partial.jsonl`` file when records built before the error were kept)."""
    from data.cli_help import keyvalue_help, print_help, wants_help

    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        return print_help(keyvalue_help("python -m data.build", __doc__, _HELP_USAGE, groups=("recipe",),
                                        notes="data.* keys: the data section of configs/default.yaml."))
    from rl.config import ConfigError, load_config, parse_cli

    overrides, flags = parse_cli(argv)
    if flags:
        print(f"data.build: unexpected arguments {flags}; expected key=value items\n\n{_USAGE}", file=sys.stderr)
        return 2
    out = None
    keep: list[str] = []
    for item in overrides:
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        if key == "out":
            out = value
        elif key.startswith("data.") or key in ("recipe", "reward.name"):
            keep.append(item)
        else:
            print(f"data.build: unsupported key {key!r}; use data.*, reward.name, recipe or out=", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    explicit_reward = any(k.split("=", 1)[0].lstrip("+") in ("recipe", "reward.name") for k in keep)
    if not explicit_reward:  # the records name no reward; validate with one that scores the task
        from data.config import DataConfig
        from rewards.registry import task_rewards

        task = next((k.split("=", 1)[1] for k in keep if k.split("=", 1)[0].lstrip("+") == "data.task"),
                    DataConfig.task)
        keep += [f"reward.name={name}" for name in task_rewards(task)[:1]]
    try:
        cfg = load_config(keep)
    except ConfigError as exc:
        print(f"data.build: {exc}", file=sys.stderr)
        return 2
    out = out or cfg.data.samples_path
    if not out:
        print("data.build: give the output file with out=FILE.jsonl|FILE.parquet", file=sys.stderr)
        return 2
    try:
        # GT negative points use the same band as the VideoSeg-R1 negative-point reward.
        report = build_samples(cfg.data, out, reward=cfg.reward.name if explicit_reward else None,
                               tau_neg=cfg.reward.params.videoseg_r1.tau_neg)
    except (OSError, ValueError) as exc:
        notes = "".join(f"\n  {n}" for n in getattr(exc, "__notes__", ()))
        print(f"data.build: {type(exc).__name__}: {exc}{notes}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.problems:
        print("problems:")
        for line in report.problems:
            print(f"  {line}")
    return 0 if report.built > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
