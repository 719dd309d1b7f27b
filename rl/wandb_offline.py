"""Read W&B's local transaction logs (``run-<id>.wandb``) without the W&B service.

W&B 0.31 ships no Python reader. The format: a 7-byte header (``:W&B``, a
uint16 magic, a version byte), then 32 KiB blocks of LevelDB-log chunks
(uint32 crc32 of type+data, uint16 length, uint8 type FULL/FIRST/MIDDLE/LAST),
each reassembled record a ``wandb_internal_pb2.Record``. A tail cut off by a
killed writer is ignored. Used to resume W&B step numbering exactly where the
files end (:mod:`rl.tracking`) and to list / check / upload offline runs
(:mod:`launch.sync`).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

HEADER_LEN = 7
BLOCK_LEN = 32768
CHUNK_HEADER_LEN = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class OfflineRunError(ValueError):
    """A ``.wandb`` file that is not a W&B transaction log."""


def _chunks(data: bytes, source: str) -> Iterator[tuple[int, bytes]]:
    if len(data) < HEADER_LEN or data[:4] != b":W&B":
        raise OfflineRunError(f"{source} is not a W&B transaction log (bad header {data[:4]!r})")
    pos = HEADER_LEN
    while pos + CHUNK_HEADER_LEN <= len(data):
        left_in_block = BLOCK_LEN - pos % BLOCK_LEN
        if left_in_block < CHUNK_HEADER_LEN:  # zero trailer of a block
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER_LEN])
        payload = data[pos + CHUNK_HEADER_LEN:pos + CHUNK_HEADER_LEN + length]
        if kind == 0 or len(payload) < length or zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            return  # unwritten or torn tail
        yield kind, payload
        pos += CHUNK_HEADER_LEN + length


def read_records(path: str | Path) -> Iterator[Any]:
    """Every complete ``Record`` protobuf of a ``run-<id>.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    buffer = b""
    for kind, payload in _chunks(data, str(path)):
        if kind == FULL:
            buffer = payload
        elif kind == FIRST:
            buffer = payload
            continue
        elif kind == MIDDLE:
            buffer += payload
            continue
        else:  # LAST
            buffer += payload
        record = wandb_internal_pb2.Record()
        record.ParseFromString(buffer)
        buffer = b""
        yield record


def _item_key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What one process logged to an ``offline-run-*`` folder."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    # wandb.define_metric definitions: metric name or glob -> its step metric ("" = none).
    metrics: dict[str, str] = field(default_factory=dict)
    # Logged artifacts (e.g. the run tables): artifact name -> {path in the artifact: staged local file}.
    artifacts: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def steps(self) -> list[int]:
        return [int(row["_step"]) for row in self.history if "_step" in row]


def read_offline_run(folder: str | Path) -> OfflineRun:
    """Run id, group, name, job type, tags, config, history rows and artifacts of one ``offline-run-*`` folder."""
    folder = Path(folder)
    files = sorted(folder.glob("run-*.wandb"))
    if not files:
        raise OfflineRunError(f"no run-*.wandb file in {folder}")
    run = OfflineRun(folder)
    for record in read_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group, run.name = r.run_id, r.project, r.run_group, r.display_name
            run.job_type = r.job_type
            run.tags = list(r.tags)
            for item in r.config.update:
                run.config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "metric":
            run.metrics[record.metric.name or record.metric.glob_name] = record.metric.step_metric
        elif kind == "artifact":
            run.artifacts[record.artifact.name] = {c.path: c.local_path for c in record.artifact.manifest.contents}
        elif kind == "history":
            row = {_item_key(item): json.loads(item.value_json) for item in record.history.item}
            if "_step" not in row and record.history.HasField("step"):
                row["_step"] = record.history.step.num
            run.history.append(row)
    run.config.pop("_wandb", None)
    # A process killed before W&B wrote its run record: the folder name still carries the id.
    run.run_id = run.run_id or folder.name.rsplit("-", 1)[-1]
    return run


def find_offline_runs(root: str | Path) -> list[Path]:
    """``offline-run-*`` folders under ``root`` (a run or sweep directory), oldest first."""
    return sorted(Path(root).rglob("offline-run-*"), key=lambda p: (p.name, str(p)))


def step_problems(runs: Sequence[OfflineRun]) -> list[str]:
    """Steps logged twice or going backwards, per run id across its processes (in start order)."""
    problems = []
    by_id: dict[str, list[OfflineRun]] = {}
    for run in runs:
        by_id.setdefault(run.run_id, []).append(run)
    for run_id, parts in by_id.items():
        last: Optional[int] = None
        for part in parts:
            for step in part.steps:
                if last is not None and step <= last:
                    problems.append(f"run {run_id}: step {step} after step {last} ({part.path.name})")
                last = step if last is None else max(last, step)
    return problems




def run_files(wandb_dir: str | Path, run_id: str) -> list[Path]:
    """Transaction logs of one run id under a ``wandb/`` folder (one per process that ran it), oldest first."""
    root = Path(wandb_dir)
    if not root.is_dir() or not run_id:
        return []
    return sorted(root.glob(f"*-{run_id}/run-{run_id}.wandb"), key=lambda p: p.parent.name)


def max_logged_step(wandb_dir: str | Path, run_id: str) -> Optional[int]:
    """Highest ``_step`` any process wrote for ``run_id`` under ``wandb_dir`` (None: no history yet)."""
    high: Optional[int] = None
    for path in run_files(wandb_dir, run_id):
        for record in read_records(path):
            if record.WhichOneof("record_type") != "history":
                continue
            steps = [json.loads(i.value_json) for i in record.history.item if _item_key(i) == "_step"]
            if record.history.HasField("step"):
                steps.append(record.history.step.num)
            for step in steps:
                high = int(step) if high is None else max(high, int(step))
    return high
