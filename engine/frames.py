"""A run's log as polars DataFrames, one per record kind, for notebooks and reports.

Lines are sorted by kind with a byte check on their opening (msgspec writes ``kind`` first) and
each group is parsed by polars' own NDJSON reader: no Python-level JSON decoding per record, so a
million-record log loads in seconds. A torn last line (a crash mid-write) is left out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from engine.log import LOG_NAME, LogFormatError

_KINDS = ("decision", "tick", "post", "like")


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
    data = log.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] != b"":
        lines.pop()  # torn last line
    else:
        lines = lines[:-1]
    if not lines and data:
        raise LogFormatError(f"{log}:1: the run header is incomplete (torn write)")
    if not lines or not lines[0].startswith(b'{"kind":"run"'):
        raise LogFormatError(f"{log}:1: an agora log starts with a 'run' header record")
    groups: dict[str, list[bytes]] = {kind: [] for kind in _KINDS}
    prefixes = {kind: f'{{"kind":"{kind}"'.encode() for kind in _KINDS}
    end: dict[str, Any] | None = None
    for line in lines[1:]:
        for kind, prefix in prefixes.items():
            if line.startswith(prefix):
                groups[kind].append(line)
                break
        else:
            if line.startswith(b'{"kind":"end"'):
                end = msgspec.json.decode(line)
    frames = {kind: _frame(rows) for kind, rows in groups.items()}
    return RunFrames(
        header=msgspec.json.decode(lines[0]),
        decisions=frames["decision"],
        ticks=frames["tick"],
        posts=frames["post"],
        likes=frames["like"],
        end=end,
    )


def _frame(rows: list[bytes]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame()
    return pl.read_ndjson(io.BytesIO(b"\n".join(rows)), infer_schema_length=None).drop("kind")
