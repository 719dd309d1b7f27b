"""Shards of an annotation job: planning, reading, atomic writing, and the output folder's manifest.

A shard is a run of ``annotate.shard_size`` consecutive records of one input file; it is the
unit of work of a Ray Data actor and the unit of resume. Planning streams each input once
(memory grows with the number of shards, not of records); a shard reads only its own records.

Output folder layout (``<output_dir>``)::

    manifest.json                 the job and every setting that changes its output
    shards/shard-000012.json      the shard's report (counts, failures with raw answers, skips)
    shards/shard-000012.jsonl     its output rows; written last: a shard is done iff it exists
    <job>.jsonl                   every shard's rows, in input order (the merged output)
    summary.json, failures.jsonl  totals by reason; the samples that failed, with their answers

Every file is written to a temporary name in the same folder and renamed into place
(:func:`write_atomic`), so a kill at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from data.build import PARQUET_JSON_COLUMNS_KEY, REQUIRED_KEYS, _clean_record

__all__ = ["ShardSpec", "OutputConflict", "plan_shards", "read_shard", "write_atomic", "shard_paths", "is_done",
           "check_manifest", "flat_settings"]


class OutputConflict(RuntimeError):
    """The output folder holds the output of a job run with other settings."""


@dataclass(frozen=True)
class ShardSpec:
    """Records ``start .. start + count - 1`` of input ``input_index`` (``path``).

    offset: byte offset of the shard's first line in a JSONL input (-1 for parquet).
    """

    index: int
    input_index: int
    path: str
    start: int
    count: int
    offset: int = -1

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "ShardSpec":
        return cls(**{k: (str(v) if k == "path" else int(v)) for k, v in row.items() if k in cls.__dataclass_fields__})


def _jsonl_line_starts(path: Path) -> Iterator[int]:
    """Byte offset of every non-blank line of a JSONL file (streamed)."""
    offset = 0
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield offset
            offset += len(line)


def plan_shards(paths: Sequence[str | os.PathLike], shard_size: int) -> list[ShardSpec]:
    """Shards of ``shard_size`` records over the inputs in order (an input's last shard may be short).

    Raises ``FileNotFoundError`` for a missing input and ``ValueError`` for another suffix than
    ``.jsonl`` / ``.parquet`` or an unreadable parquet file.
    """
    specs: list[ShardSpec] = []
    for input_index, raw in enumerate(paths):
        path = Path(raw)
        if not path.is_file():
            raise FileNotFoundError(f"annotate input not found: {path}")
        if path.suffix == ".jsonl":
            starts, total = [], 0
            for number, offset in enumerate(_jsonl_line_starts(path)):
                if number % shard_size == 0:
                    starts.append((number, offset))
                total = number + 1
            for number, offset in starts:
                specs.append(ShardSpec(len(specs), input_index, str(path), number, min(shard_size, total - number), offset))
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                total = pq.ParquetFile(path).metadata.num_rows
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise ValueError(f"cannot read parquet input {path}: {exc}") from None
            for number in range(0, total, shard_size):
                specs.append(ShardSpec(len(specs), input_index, str(path), number, min(shard_size, total - number)))
        else:
            raise ValueError(f"annotate inputs must end in .jsonl or .parquet, got {path}")
    return specs


def _check_record(record: Any, where: str) -> Optional[str]:
    if not isinstance(record, dict):
        return f"{where}: not a JSON object"
    missing = [k for k in REQUIRED_KEYS if k not in record]
    return f"{where}: lacks keys {missing}" if missing else None


def read_shard(spec: ShardSpec) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The shard's records, and one ``{"where", "reason", "detail"}`` per line that is not a record.

    A line that is not JSON, not an object or lacks a required key (:data:`data.build.REQUIRED_KEYS`)
    is skipped with reason ``invalid_record``; strings with invalid code points are repaired as
    :func:`data.build.load_samples` does.
    """
    records: list[dict[str, Any]] = []
    problems: list[dict[str, str]] = []
    if spec.offset >= 0:
        with open(spec.path, "rb") as handle:
            handle.seek(spec.offset)
            number = spec.start
            while number < spec.start + spec.count:
                line = handle.readline()
                if not line:
                    break
                if not line.strip():
                    continue
                where = f"{spec.path} record {number}"
                number += 1
                try:
                    record = json.loads(line.decode("utf-8", errors="surrogateescape"))
                except ValueError as exc:
                    problems.append({"where": where, "reason": "invalid_record", "detail": f"invalid JSON: {exc}"})
                    continue
                problem = _check_record(record, where)
                if problem:
                    problems.append({"where": where, "reason": "invalid_record", "detail": problem})
                    continue
                records.append(_clean_record(record, where))
        return records, problems
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(spec.path)
    meta = parquet.schema_arrow.metadata or {}
    json_cols = json.loads(meta.get(PARQUET_JSON_COLUMNS_KEY, b"[]"))
    number = 0
    for batch in parquet.iter_batches(batch_size=max(1, min(spec.count, 1024))):
        for row in batch.to_pylist():
            if spec.start <= number < spec.start + spec.count:
                where = f"{spec.path} row {number}"
                try:
                    for col in json_cols:
                        if row.get(col) is not None:
                            row[col] = json.loads(row[col])
                except (TypeError, ValueError) as exc:
                    problems.append({"where": where, "reason": "invalid_record", "detail": f"invalid JSON column: {exc}"})
                else:
                    row = {k: v for k, v in row.items() if v is not None or k not in json_cols}
                    problem = _check_record(row, where)
                    if problem:
                        problems.append({"where": where, "reason": "invalid_record", "detail": problem})
                    else:
                        records.append(_clean_record(row, where))
            number += 1
        if number >= spec.start + spec.count:
            break
    return records, problems


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def shard_paths(out_dir: str | os.PathLike, index: int) -> tuple[Path, Path]:
    """(report, rows) files of shard ``index``."""
    base = Path(out_dir) / "shards" / f"shard-{index:06d}"
    return base.with_suffix(".json"), base.with_suffix(".jsonl")


def is_done(out_dir: str | os.PathLike, index: int) -> bool:
    report, rows = shard_paths(out_dir, index)
    return report.is_file() and rows.is_file()


def flat_settings(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flat_settings(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def check_manifest(out_dir: str | os.PathLike, settings: dict[str, Any], write: bool = True) -> bool:
    """Compare the folder's ``manifest.json`` with ``settings``; write it when absent (and ``write``).

    Returns True when the folder already held this job's manifest. Raises :class:`OutputConflict`
    naming every differing setting when it holds another job's or other settings' output: outputs
    are never mixed.
    """
    path = Path(out_dir) / "manifest.json"
    current = json.loads(json.dumps(settings, sort_keys=True, default=str))
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OutputConflict(f"{path} is unreadable ({exc}); choose another annotate.output_dir") from None
        if recorded == current:
            return True
        old, new = flat_settings(recorded), flat_settings(current)
        changed = [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
                   for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise OutputConflict(f"{Path(out_dir)} holds the output of a job run with other settings ("
                             + "; ".join(changed[:8]) + (f"; and {len(changed) - 8} more" if len(changed) > 8 else "")
                             + "); outputs are never mixed: choose another annotate.output_dir or delete the folder")
    if Path(out_dir).is_dir() and any(p.name != "manifest.json" for p in Path(out_dir).iterdir()):
        raise OutputConflict(f"{Path(out_dir)} is not empty and has no manifest.json (not an annotate output); "
                             "choose another annotate.output_dir")
    if write:
        write_atomic(path, (json.dumps(current, indent=2, sort_keys=True) + "\n").encode())
    return False
