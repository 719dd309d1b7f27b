"""W&B offline runs: list them, check their steps, upload them later.

``python -m launch.sync runs/<name>`` lists the offline runs under a run (or
sweep) directory with their run id, group, name and logged steps, checks that
the processes of each run (one ``offline-run-*`` folder per start; a resumed run
reopens the same id) never log a step twice or go backwards, and prints the
``wandb sync`` commands that upload them. ``--upload`` runs those commands, in
start order per run id, so a resumed run is appended to its earlier part (needs
network access and ``WANDB_API_KEY``; the same as
``wandb sync runs/<name>/wandb/offline-run-*``).

The ``.wandb`` transaction log is read directly (W&B 0.31 ships no Python
reader): a 7-byte header (``:W&B``, magic, version) then 32 KiB blocks of
LevelDB-log records (crc32, length, type; FULL/FIRST/MIDDLE/LAST chunks), each
record a ``wandb_internal_pb2.Record``. A tail cut off by a killed writer is
ignored.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
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
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        return [int(row["_step"]) for row in self.history if "_step" in row]


def read_offline_run(folder: str | Path) -> OfflineRun:
    """Run id, group, name, tags, config and history rows of one ``offline-run-*`` folder."""
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
            run.tags = list(r.tags)
            for item in r.config.update:
                run.config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            row = {_item_key(item): json.loads(item.value_json) for item in record.history.item}
            if "_step" not in row and record.history.HasField("step"):
                row["_step"] = record.history.step.num
            run.history.append(row)
    run.config.pop("_wandb", None)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="run or sweep directory (searched for wandb/offline-run-*)")
    parser.add_argument("--upload", action="store_true", help="run `wandb sync` on every offline run, oldest first")
    args = parser.parse_args(argv)

    folders = find_offline_runs(args.root)
    if not folders:
        print(f"no W&B offline runs under {args.root}", file=sys.stderr)
        return 1
    runs = [read_offline_run(f) for f in folders]
    for run in runs:
        steps = run.steps
        span = f"steps {steps[0]}..{steps[-1]} ({len(steps)})" if steps else "no steps"
        print(f"{run.run_id}  group={run.group or '-'}  name={run.name or '-'}  {span}  {run.path}")
    problems = step_problems(runs)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    commands = [["wandb", "sync", str(f)] for f in folders]
    if not args.upload:
        print("upload later with:")
        for command in commands:
            print("  " + " ".join(command))
        return 0
    for command in commands:
        result = subprocess.run(command, check=False)
        if result.returncode:
            print(f"`{' '.join(command)}` failed ({result.returncode})", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
