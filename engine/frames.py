"""A run's log as polars DataFrames, one per record kind, for notebooks and reports.

Every kind the run's world and policies declare (the header lists them) gets its frame beside
the engine's decisions and ticks; a line of a kind the run did not declare is an error naming
its line, never left out. Lines are sorted by kind with array operations on the byte after
``{"kind":"`` (msgspec writes ``kind`` first), each group's opening checked, and each group is
parsed by polars' own NDJSON reader: no Python-level work per record, so a million-record log
loads in about two seconds. A torn last line (a crash mid-write) is left out.

The frames hold the run's effective records, as ``replay.read_run`` does: after a ``resume``
record with ``rollback`` set, the records logged before it for a tick at or after its tick are
left out (superseded), one decision per (tick, agent) is kept (the last), and ``end`` is the
last one after the last resume. A log with no resume record is read without any of this.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import numpy as np
import polars as pl
from numpy.typing import NDArray

from agora.engine.config import ConfigError
from agora.engine.log import (
    ENGINE_BULK_KINDS,
    LOG_NAME,
    LineChunks,
    LogFormatError,
    opening,
    sort_by_kind,
)
from agora.engine.record_kinds import declared_kinds, kind_in, why_not
from agora.engine.records import RunHeader

_END = opening("end")
_RESUME = opening("resume")
_RUN = opening("run")
# The engine's kinds that are neither frames nor bulk: read apart, or (a header) skipped.
_OTHERS = ("resume", "end", "run")


@dataclass(frozen=True)
class RunFrames:
    header: dict[str, Any]
    decisions: pl.DataFrame
    ticks: pl.DataFrame
    # A frame per record kind the run's world and policies declare, by kind (the header's
    # ``records`` says who declares each); a kind with no record has an empty frame.
    records: dict[str, pl.DataFrame]
    end: dict[str, Any] | None

    def of(self, kind: str) -> pl.DataFrame:
        """The frame of ``kind``: ``decision``, ``tick`` or a declared one."""
        if kind == "decision":
            return self.decisions
        if kind == "tick":
            return self.ticks
        if kind not in self.records:
            known = ", ".join(["decision", "tick", *sorted(self.records)])
            raise KeyError(f"{kind!r}: this run's log holds no such kind (it has {known})")
        return self.records[kind]


def load_run(path: str | Path) -> RunFrames:
    """Load a run directory (or its ``log.jsonl``)."""
    log = Path(path)
    if log.is_dir():
        log = log / LOG_NAME
    if not log.is_file():
        raise LogFormatError(f"{log}: no such log (is {path} a run directory?)")
    kinds = (*ENGINE_BULK_KINDS, *_declared(log))
    sorted_ = _by_kind(log, kinds)
    if sorted_ is None:
        sorted_ = _by_kind_line_by_line(log, kinds)
    header, groups, others = sorted_
    # polars releases the GIL and infers a schema on one core: the decisions' schema is
    # inferred while the other kinds are read beside it.
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = {kind: pool.submit(_frame, groups[kind]) for kind in kinds}
        frames = {kind: future.result() for kind, future in pending.items()}
    resumes = [(number, line) for number, line in others.lines if line.startswith(_RESUME)]
    ends = [(number, line) for number, line in others.lines if line.startswith(_END)]
    if resumes:
        frames = _effective(frames, others.numbers, resumes)
    last_resume = resumes[-1][0] if resumes else 0
    end = next((line for number, line in reversed(ends) if number > last_resume), None)
    return RunFrames(
        header=msgspec.json.decode(header),
        decisions=frames.pop("decision"),
        ticks=frames.pop("tick"),
        records=frames,
        end=msgspec.json.decode(end) if end is not None else None,
    )


def _declared(log: Path) -> list[str]:
    """The kinds the log's header declares, read from its first line alone."""
    with open(log, "rb") as file:
        first = file.readline()
    if not first.endswith(b"\n"):
        _no_header(log, torn=bool(first))
    line = _checked_header(log, first[:-1])
    try:
        header = msgspec.json.decode(line, type=RunHeader)
    except msgspec.DecodeError as exc:
        raise LogFormatError(f"{log}:1: not an agora log record ({exc})") from None
    try:
        return declared_kinds(header)
    except ConfigError as exc:
        raise LogFormatError(
            f"{log}:1: the record kinds of the run cannot be read ({exc})"
        ) from None


@dataclass(eq=False)
class _Others:
    """The line numbers of each bulk kind's lines, and every other line (resume, end) after
    the header."""

    numbers: dict[str, list[NDArray[np.int64]]]
    lines: list[tuple[int, bytes]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Others):
            return NotImplemented
        return self.lines == other.lines and all(
            np.array_equal(
                _joined(self.numbers.get(kind, [])), _joined(other.numbers.get(kind, []))
            )
            for kind in {*self.numbers, *other.numbers}
        )


def _joined(arrays: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)


# A log's header line, each bulk kind's lines as NDJSON, and the rest.
_Sorted = tuple[bytes, dict[str, bytes | bytearray], _Others]


def _effective(
    frames: dict[str, pl.DataFrame],
    numbers: dict[str, list[NDArray[np.int64]]],
    resumes: list[tuple[int, bytes]],
) -> dict[str, pl.DataFrame]:
    """The frames without the records that a later resume supersedes."""
    rollbacks = []
    for number, line in resumes:
        record = msgspec.json.decode(line)
        if record.get("rollback"):
            rollbacks.append((number, int(record["tick"])))
    effective = {}
    for kind, frame in frames.items():
        if frame.is_empty():
            effective[kind] = frame
            continue
        lines = _joined(numbers[kind])
        frame = frame.with_columns(pl.Series("_line", lines))
        for number, tick in rollbacks:
            frame = frame.filter((pl.col("_line") > number) | (pl.col("tick") < tick))
        if kind == "decision":
            frame = frame.unique(subset=["tick", "agent"], keep="last", maintain_order=True)
        effective[kind] = frame.drop("_line")
    return effective


def _by_kind(log: Path, kinds: tuple[str, ...]) -> _Sorted | None:
    """The log sorted a chunk at a time; None where the exact sort must decide."""
    header: bytes | None = None
    groups = {kind: bytearray() for kind in kinds}
    others = _Others({kind: [] for kind in kinds}, [])
    chunks = LineChunks(log)
    number = 1  # of the next line
    for lines in chunks:
        if header is None:
            header = _checked_header(log, lines[0])
            del lines[0]
            number = 2
        by_kind = sort_by_kind(lines, kinds, first_number=number)
        if by_kind is None:
            return None
        if not all(line.startswith((_RESUME, _END, _RUN)) for _, line in by_kind.others):
            return None  # a kind the run did not declare, or no record: the exact sort names it
        number += len(lines)
        for kind, group in groups.items():
            chosen = by_kind.bulk[kind]
            if not all(map(bytes.startswith, chosen, repeat(opening(kind)))):
                return None
            if chosen:
                group += b"\n".join(chosen)
                group += b"\n"
            others.numbers[kind].append(by_kind.numbers[kind])
        others.lines += by_kind.others
    if header is None:
        _no_header(log, torn=bool(chunks.torn))
    return header, dict(groups), others


def _by_kind_line_by_line(log: Path, kinds: tuple[str, ...]) -> _Sorted:
    """The exact sort, for a log the array sort cannot vouch for (a short or hand-made line);
    a line of no kind of the run is an error naming it."""
    lines = log.read_bytes().split(b"\n")
    torn = lines.pop()
    if not lines:
        _no_header(log, torn=bool(torn))
    header = _checked_header(log, lines[0])
    groups: dict[str, list[bytes]] = {kind: [] for kind in kinds}
    numbers: dict[str, list[int]] = {kind: [] for kind in kinds}
    others = _Others({}, [])
    declared = kinds[len(ENGINE_BULK_KINDS) :]
    prefixes = {kind: opening(kind) for kind in kinds}
    for number, line in enumerate(lines[1:], start=2):
        # By its opening as msgspec writes it, else by decoding (a hand-made, spaced line).
        kind = next((k for k, prefix in prefixes.items() if line.startswith(prefix)), None)
        if kind is None:
            kind = kind_in(line)
        if kind in groups:
            groups[kind].append(line)
            numbers[kind].append(number)
        elif kind in _OTHERS:
            others.lines.append((number, line))
        else:
            problem = "no object with a text 'kind'" if kind is None else f"kind {kind!r}"
            raise LogFormatError(f"{log}:{number}: {why_not(line, problem, declared)}")
    others.numbers = {kind: [np.array(n, dtype=np.int64)] for kind, n in numbers.items()}
    return header, {kind: b"\n".join(rows) for kind, rows in groups.items()}, others


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
