"""A run's log as polars DataFrames, one per record kind, for notebooks and reports.

Lines are sorted by kind with array operations on the byte after ``{"kind":"`` (msgspec writes
``kind`` first), each group's opening checked, and each group is parsed by polars' own NDJSON
reader: no Python-level work per record, so a million-record log loads in about two seconds. A
torn last line (a crash mid-write) is left out.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import polars as pl

from engine.log import BULK_KINDS, LOG_NAME, LineChunks, LogFormatError, opening, sort_by_kind

_KINDS = BULK_KINDS
_END = opening("end")


@dataclass(frozen=True)
class RunFrames:
    header: dict[str, Any]
    decisions: pl.DataFrame
    ticks: pl.DataFrame
    posts: pl.DataFrame
    likes: pl.DataFrame
    end: dict[str, Any] | None


def load_run(path: str | Path) -> RunFrames:
    """Load a run directory (or its ``log.jsonl``)."""
    log = Path(path)
    if log.is_dir():
        log = log / LOG_NAME
    if not log.is_file():
        raise LogFormatError(f"{log}: no such log (is {path} a run directory?)")
    sorted_ = _by_kind(log)
    if sorted_ is None:
        sorted_ = _by_kind_line_by_line(log)
    header, groups, end = sorted_
    # polars releases the GIL and infers a schema on one core: the decisions' schema is
    # inferred while the other kinds are read beside it.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = {kind: pool.submit(_frame, groups[kind]) for kind in _KINDS}
        frames = {kind: future.result() for kind, future in pending.items()}
    return RunFrames(
        header=msgspec.json.decode(header),
        decisions=frames["decision"],
        ticks=frames["tick"],
        posts=frames["post"],
        likes=frames["like"],
        end=end,
    )


# A log's header line, each bulk kind's lines as NDJSON, and the last ``end`` record.
_Sorted = tuple[bytes, dict[str, bytes | bytearray], dict[str, Any] | None]


def _by_kind(log: Path) -> _Sorted | None:
    """The log sorted a chunk at a time; None where the exact sort must decide."""
    header: bytes | None = None
    groups = {kind: bytearray() for kind in _KINDS}
    end: dict[str, Any] | None = None
    chunks = LineChunks(log)
    for lines in chunks:
        if header is None:
            header = _checked_header(log, lines[0])
            del lines[0]
        by_kind = sort_by_kind(lines)
        if by_kind is None:
            return None
        for kind, group in groups.items():
            chosen = by_kind.bulk[kind]
            if not all(map(bytes.startswith, chosen, repeat(opening(kind)))):
                return None
            if chosen:
                group += b"\n".join(chosen)
                group += b"\n"
        for _, line in by_kind.others:
            if line.startswith(_END):
                end = msgspec.json.decode(line)
    if header is None:
        _no_header(log, torn=bool(chunks.torn))
    return header, dict(groups), end


def _by_kind_line_by_line(log: Path) -> _Sorted:
    """The exact sort, for a log the array sort cannot vouch for (a short or hand-made line)."""
    lines = log.read_bytes().split(b"\n")
    torn = lines.pop()
    if not lines:
        _no_header(log, torn=bool(torn))
    header = _checked_header(log, lines[0])
    groups: dict[str, list[bytes]] = {kind: [] for kind in _KINDS}
    prefixes = {kind: opening(kind) for kind in _KINDS}
    end: dict[str, Any] | None = None
    for line in lines[1:]:
        for kind, prefix in prefixes.items():
            if line.startswith(prefix):
                groups[kind].append(line)
                break
        else:
            if line.startswith(_END):
                end = msgspec.json.decode(line)
    return header, {kind: b"\n".join(rows) for kind, rows in groups.items()}, end


def _checked_header(log: Path, line: bytes) -> bytes:
    if not line.startswith(b'{"kind":"run"'):
        raise LogFormatError(f"{log}:1: an agora log starts with a 'run' header record")
    return line


def _no_header(log: Path, *, torn: bool) -> NoReturn:
    if torn:
        raise LogFormatError(f"{log}:1: the run header is incomplete (torn write)")
    raise LogFormatError(f"{log}:1: an agora log starts with a 'run' header record")


def _frame(ndjson: bytes | bytearray) -> pl.DataFrame:
    if not ndjson:
        return pl.DataFrame()
    return pl.read_ndjson(io.BytesIO(ndjson), infer_schema_length=None).drop("kind")
