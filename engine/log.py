"""The run log: JSON lines, only ever appended to, each record flushed as it is written.

``RunLogWriter.sync`` (called at every tick end) fsyncs, so a crash loses at most the unfinished
tick's tail. ``read_log`` names the file and line of anything that is not an agora record, a
record of a kind the run's header does not declare included (``record_kinds.py``).
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from types import TracebackType

import msgspec
import numpy as np
from numpy.typing import NDArray

from agora.engine.config import ConfigError
from agora.engine.integrity import seal
from agora.engine.record_kinds import BUILTIN_KINDS, RunRecords, kind_in, kind_of
from agora.engine.records import Decision, LogRecord, RunHeader

LOG_NAME = "log.jsonl"


class LogFormatError(ValueError):
    pass


class LogBusyError(OSError):
    """Another process is writing this run's log."""


class LogEncodeError(ValueError):
    """A record holds what a JSON line cannot (a lone surrogate, a type msgspec does not know).

    Nothing of the write that raised it reached the log, so the caller can log something else
    in its place rather than stop the run.
    """


# What msgspec raises for a value it cannot encode: UnicodeEncodeError is a ValueError.
UNENCODABLE = (msgspec.EncodeError, TypeError, ValueError, OverflowError, RecursionError)


def _unencodable(record: LogRecord, exc: Exception) -> LogEncodeError:
    kind = record.__struct_config__.tag
    return LogEncodeError(f"a {kind!r} record cannot be logged: {type(exc).__name__}: {exc}")


def _undeclared(record: LogRecord, records: RunRecords) -> LogEncodeError:
    # Written, it would make the log unreadable: every reader refuses a kind the header lacks.
    kind = kind_of(type(record))
    declared = ", ".join(sorted(records.declared)) or "none"
    return LogEncodeError(
        f"a {kind!r} record cannot be logged: no plugin of this run declares that kind in its "
        f"record_types (declared: {declared})"
    )


class RunLogWriter:
    """Appends records to a run's log, holding an exclusive lock on it while open.

    ``create`` writes the header to a temporary file and links it into place, so a log either
    does not exist or starts with a whole header, and an existing log is never overwritten.
    With ``records`` (a run's record types) a record of any other type is refused before it is
    written (``LogEncodeError``).
    """

    def __init__(
        self,
        path: Path,
        *,
        append: bool = False,
        header: LogRecord | None = None,
        records: RunRecords | None = None,
    ) -> None:
        self.path = path
        self._records = records
        self._allowed = records.types if records is not None else None
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self.records = 0
        if not append:
            if header is None:
                raise ValueError("a new log starts with its header")
            self._create(header)
        # Unbuffered and O_APPEND: each record reaches the OS in one write, always at the end.
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()/__exit__
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise LogBusyError(f"{path}: another agora process is writing this run") from None

    def _create(self, header: LogRecord) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".log-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(self._encoder.encode(header) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, self.path)  # fails if a log is already there: never overwritten
        finally:
            os.unlink(temporary)
        self.records = 1

    def append(self, record: LogRecord) -> None:
        # ``append_many`` of one record, without the tuple and the loop.
        buffer = self._buffer
        if self._allowed is not None and type(record) not in self._allowed:
            assert self._records is not None
            raise _undeclared(record, self._records)
        try:
            self._encoder.encode_into(record, buffer)  # offset 0: replaces what the buffer held
        except UNENCODABLE as exc:
            raise _unencodable(record, exc) from exc
        if type(record) is Decision:
            seal(buffer, 0)  # its check: replay names an edited decision's line
        buffer.append(10)  # b"\n"
        self._write_all(buffer)
        self.records += 1

    def append_many(self, records: Iterable[LogRecord]) -> None:
        """Write records in one write, so a kill leaves all of them or none."""
        self._buffer.clear()
        count = 0
        buffer = self._buffer
        allowed = self._allowed
        for record in records:
            if allowed is not None and type(record) not in allowed:
                assert self._records is not None
                raise _undeclared(record, self._records)  # before the write: none is logged
            start = len(buffer)
            try:
                self._encoder.encode_into(record, buffer, -1)
            except UNENCODABLE as exc:  # before the write: none of the records is logged
                raise _unencodable(record, exc) from exc
            if type(record) is Decision:
                seal(buffer, start)  # its check: replay names an edited decision's line
            buffer.extend(b"\n")
            count += 1
        if count:
            self._write_all(self._buffer)
            self.records += count

    def _write_all(self, data: bytearray) -> None:
        # A full disk can take part of a write and return short: write the rest, so a record
        # is never left torn in the middle of a log; a write that takes nothing is ENOSPC.
        written = self._file.write(data)
        if written is None or written >= len(data):
            return
        view = memoryview(data)[written:]
        while view:
            step = self._file.write(view)
            if not step:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
            view = view[step:]

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()

    def __enter__(self) -> RunLogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_not_busy(path: Path) -> None:
    """Raise ``LogBusyError`` if another process holds the run's log open for writing."""
    with open(path, "ab") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogBusyError(f"{path}: another agora process is writing this run") from None
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


# The header is read before the run's kinds are known: with the engine's own kinds alone.
ENGINE_RECORDS = RunRecords()


def run_records(path: Path, header: RunHeader) -> RunRecords:
    """The record types of the run ``header`` starts, or ``LogFormatError`` naming its line."""
    try:
        return RunRecords.of_header(header)
    except ConfigError as exc:
        raise LogFormatError(
            f"{path}:1: the record kinds of the run cannot be read ({exc})"
        ) from None


def read_log(
    path: Path, *, allow_torn_tail: bool = False, records: RunRecords | None = None
) -> Iterator[LogRecord]:
    """Yield the log's records in order, decoded as the kinds ``records`` holds (default: the
    kinds the log's header declares, their types found through the plugins it names).

    A last line without its newline is what a crash mid-write leaves; it is skipped when
    ``allow_torn_tail`` is set and is an error otherwise.
    """
    for _, record in read_numbered(path, allow_torn_tail=allow_torn_tail, records=records):
        yield record


def read_numbered(
    path: Path, *, allow_torn_tail: bool = False, records: RunRecords | None = None
) -> Iterator[tuple[int, LogRecord]]:
    """``read_log`` with each record's line number, for errors that point at a line."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such log") from None
    with file:
        data = file.read()
    yield from numbered_records(path, data, allow_torn_tail=allow_torn_tail, records=records)


def numbered_records(
    path: Path, data: bytes, *, allow_torn_tail: bool = False, records: RunRecords | None = None
) -> Iterator[tuple[int, LogRecord]]:
    """``read_numbered`` on a log's bytes already read; ``path`` only names it in errors."""
    lines = data.split(b"\n")
    torn = lines.pop()  # empty when the file ends with a newline
    kinds = records if records is not None else ENGINE_RECORDS
    decode = kinds.decoder.decode
    for number, line in enumerate(lines, start=1):
        try:
            record = decode(line)
        except msgspec.DecodeError as exc:
            if number == 1 and kind_in(line) not in (None, "run"):
                raise LogFormatError(
                    f"{path}:1: an agora log starts with a 'run' header record"
                ) from None
            raise LogFormatError(f"{path}:{number}: {kinds.why_not(line, exc)}") from None
        if number == 1:
            if not isinstance(record, RunHeader):
                raise LogFormatError(f"{path}:1: an agora log starts with a 'run' header record")
            if records is None:
                kinds = run_records(path, record)
                decode = kinds.decoder.decode
        yield number, record
    if not lines and torn:
        raise LogFormatError(f"{path}:1: the run header is incomplete (torn write)")
    if torn and not allow_torn_tail:
        raise LogFormatError(f"{path}:{len(lines) + 1}: the last record is incomplete (torn write)")


# ---- reading a large log fast ------------------------------------------------------------

# The engine's kinds a log holds by the hundred thousand; a run's declared kinds join them.
# msgspec writes ``kind`` first, so the byte after '{"kind":"' sorts a line without decoding it.
ENGINE_BULK_KINDS = ("decision", "tick")
_KIND_BYTE = len(b'{"kind":"')


CHUNK_BYTES = 1 << 22  # 1 to 8 MiB read alike here


class LineChunks:
    """A log's complete lines, a few MiB at a time; ``torn`` then holds a torn last line.

    The lines of one chunk are freed before the next is split, so their memory is reused
    rather than faulted in afresh (0.1 s less on a 1M-record log than splitting the whole file
    at once), and the file is never held whole beside its lines.
    """

    def __init__(self, path: Path, chunk: int | None = None) -> None:
        self.path = path
        self.chunk = chunk or CHUNK_BYTES
        self.torn = b""

    def __iter__(self) -> Iterator[list[bytes]]:
        rest = b""
        with open(self.path, "rb") as file:
            while chunk := file.read(self.chunk):
                lines = chunk.split(b"\n")
                if rest:  # only the line cut at the chunk's start is joined, not the chunk
                    lines[0] = rest + lines[0]
                rest = lines.pop()  # the line the next chunk finishes, or a torn last line
                if lines:
                    yield lines
        self.torn = rest


@dataclass(frozen=True)
class LinesByKind:
    """A log's lines sorted by kind, each kind in log order."""

    bulk: dict[str, list[bytes]]
    # Line number of each line of a bulk kind, in the order of ``bulk[kind]``.
    numbers: dict[str, NDArray[np.int64]]
    # Every other line (header, resume, end, or one this sort cannot vouch for), in log order.
    others: list[tuple[int, bytes]]


def sort_by_kind(
    lines: list[bytes], kinds: Sequence[str] = ENGINE_BULK_KINDS, first_number: int = 1
) -> LinesByKind | None:
    """Sort ``lines`` (numbered from ``first_number``) into ``kinds`` with array operations.

    A kind whose first letter no other kind of the run has (the engine's included) is placed
    by that one byte, so the caller checks that each line is of the kind it was placed as (a
    typed decoder does, and fails on any other). Kinds that share a first letter (``tick`` and
    a world's ``trade``) are told apart by their whole opening, looked at only on the lines
    with that letter. None when a line is too short to hold a kind: the caller then takes the
    exact line-by-line path, which names the line.
    """
    try:
        codes = np.fromiter(map(itemgetter(_KIND_BYTE), lines), dtype=np.uint8, count=len(lines))
    except IndexError:
        return None
    letters = Counter(kind[0] for kind in {*kinds, *BUILTIN_KINDS})
    # One object array so each kind is one masked take, not a Python loop over every line.
    objects = np.empty(len(lines), dtype=object)
    objects[:] = lines
    bulk: dict[str, list[bytes]] = {}
    numbers: dict[str, NDArray[np.int64]] = {}
    rest = np.ones(len(lines), dtype=bool)
    for kind in kinds:
        mask = codes == ord(kind[0])
        if letters[kind[0]] > 1:
            head = opening(kind)
            candidates = np.flatnonzero(mask)
            mask = np.zeros(len(lines), dtype=bool)
            mask[[i for i in candidates.tolist() if lines[i].startswith(head)]] = True
        bulk[kind] = objects[mask].tolist()
        numbers[kind] = np.flatnonzero(mask) + first_number
        rest &= ~mask
    others = [(int(i) + first_number, lines[i]) for i in np.flatnonzero(rest)]
    return LinesByKind(bulk=bulk, numbers=numbers, others=others)


def opening(kind: str) -> bytes:
    """How msgspec begins a record of ``kind``."""
    return f'{{"kind":"{kind}"'.encode()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a log's records are built or replayed.

    Records hold no reference cycles, yet each container built counts towards the next
    collection and every full collection walks all records built so far: reading a 1M-record
    log spent 2.1 of its 3.0 s in the collector. Nested uses leave it to the outermost.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        # What was built is long-lived: move it to the oldest generation in O(1) rather than
        # have the first young collection walk all of it (0.26 s for a 1M-record log). A
        # caller's own frozen objects are left alone: freeze/unfreeze would thaw them.
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        gc.enable()
