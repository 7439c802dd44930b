"""The run log: JSON lines, only ever appended to, each record flushed as it is written.

``RunLogWriter.sync`` (called at every tick end) fsyncs, so a crash loses at most the unfinished
tick's tail. ``read_log`` names the file and line of anything that is not an agora record.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import msgspec

from engine.records import AnyRecord, LogRecord

LOG_NAME = "log.jsonl"


class LogFormatError(ValueError):
    pass


class LogBusyError(OSError):
    """Another process is writing this run's log."""


class RunLogWriter:
    """Appends records to a run's log, holding an exclusive lock on it while open.

    ``create`` writes the header to a temporary file and links it into place, so a log either
    does not exist or starts with a whole header, and an existing log is never overwritten.
    """

    def __init__(
        self, path: Path, *, append: bool = False, header: LogRecord | None = None
    ) -> None:
        self.path = path
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
        self.append_many((record,))

    def append_many(self, records: Iterable[LogRecord]) -> None:
        """Write records in one write, so a kill leaves all of them or none."""
        self._buffer.clear()
        count = 0
        for record in records:
            self._encoder.encode_into(record, self._buffer, -1)
            self._buffer.extend(b"\n")
            count += 1
        if count:
            self._file.write(self._buffer)
            self.records += count

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


_decoder: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(AnyRecord)


def read_log(path: Path, *, allow_torn_tail: bool = False) -> Iterator[AnyRecord]:
    """Yield the log's records in order.

    A last line without its newline is what a crash mid-write leaves; it is skipped when
    ``allow_torn_tail`` is set and is an error otherwise.
    """
    for _, record in read_numbered(path, allow_torn_tail=allow_torn_tail):
        yield record


def read_numbered(path: Path, *, allow_torn_tail: bool = False) -> Iterator[tuple[int, AnyRecord]]:
    """``read_log`` with each record's line number, for errors that point at a line."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such log") from None
    with file:
        data = file.read()
    lines = data.split(b"\n")
    torn = lines.pop()  # empty when the file ends with a newline
    for number, line in enumerate(lines, start=1):
        try:
            record = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise LogFormatError(f"{path}:{number}: not an agora log record ({exc})") from None
        if number == 1 and record.__struct_config__.tag != "run":
            raise LogFormatError(f"{path}:1: an agora log starts with a 'run' header record")
        yield number, record
    if not lines and torn:
        raise LogFormatError(f"{path}:1: the run header is incomplete (torn write)")
    if torn and not allow_torn_tail:
        raise LogFormatError(f"{path}:{len(lines) + 1}: the last record is incomplete (torn write)")
