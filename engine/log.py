"""The run log: JSON lines, only ever appended to, each record flushed as it is written.

``RunLogWriter.sync`` (called at every tick end) fsyncs, so a crash loses at most the unfinished
tick's tail. ``read_log`` names the file and line of anything that is not an agora record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import msgspec

from engine.records import AnyRecord, LogRecord

LOG_NAME = "log.jsonl"


class LogFormatError(ValueError):
    pass


class RunLogWriter:
    """Appends records to a new log file; refuses to touch a file that already exists."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        # Unbuffered: each record reaches the OS in one write as soon as it is appended.
        # A new run creates its log ("x": never over an existing one); a resumed run appends.
        mode = "ab" if append else "xb"
        self._file = open(path, mode, buffering=0)  # noqa: SIM115 - closed by close()/__exit__
        self._encoder = msgspec.json.Encoder()
        self._buffer = bytearray()
        self.records = 0

    def append(self, record: LogRecord) -> None:
        self._encoder.encode_into(record, self._buffer)
        self._buffer.extend(b"\n")
        self._file.write(self._buffer)
        self.records += 1

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
