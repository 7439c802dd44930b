"""Tamper evidence for a run's log: a hash over the header, a check on every decision line.

The run header (its resolved config above all) is what resume and replay rebuild a run from, so
it carries ``header_hash``: blake2b of the header encoded with that field None. An edited
header is refused with its line rather than rebuilding some other run.

Each decision line ends with ``"check":"<crc32>"}``, the CRC-32 of the line as it was encoded
with an empty check, filled in by the log writer (``seal``) at C speed: a digest that does not
match tells replay that some record of a tick was changed, and the checks tell it which one.
These are checks against accidents and hand edits, not against someone who recomputes them.
"""

from __future__ import annotations

import hashlib
import zlib

import msgspec

from agora.engine.records import RunHeader

# Logs of format 2 on carry ``header_hash`` and decision checks; of format 3 on, the header
# lists the run's record kinds (``records``). New logs are written in the latest, ``FORMAT``.
CHECKS_FORMAT = 2
RECORDS_FORMAT = 3
FORMAT = RECORDS_FORMAT

_UNSEALED_TAIL = b'"check":""}'
_SEALED_HEAD = b'"check":"'
_SEALED_LENGTH = len(_SEALED_HEAD) + 8 + 2  # '"check":"' + 8 hex digits + '"}'


def header_hash(header: RunHeader) -> str:
    unsealed = msgspec.structs.replace(header, header_hash=None)
    if header.format >= RECORDS_FORMAT:
        encoded = msgspec.json.encode(unsealed)
    else:
        # An older header was hashed as written, without ``records``: re-encoded without it
        # (a dict of the same fields encodes to the same bytes), so it still verifies.
        fields = msgspec.to_builtins(unsealed)
        del fields["records"]
        encoded = msgspec.json.encode(fields)
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def sealed_header(header: RunHeader) -> RunHeader:
    """The header with its format and hash set, as a new log starts."""
    header = msgspec.structs.replace(header, format=FORMAT, header_hash=None)
    return msgspec.structs.replace(header, header_hash=header_hash(header))


def header_edited(header: RunHeader) -> bool:
    """True when the header's hash does not match it (a header of format 2 on without a hash
    was edited too, and so was one of format 2 whose hash cannot cover the record kinds it
    lists); older logs, which carry none, pass."""
    if header.header_hash is None:
        return header.format >= CHECKS_FORMAT
    if header.format < RECORDS_FORMAT and header.records:
        return True
    return header.header_hash != header_hash(header)


def seal(buffer: bytearray, start: int) -> None:
    """Fill in the check of the Decision record just encoded at ``buffer[start:]`` (before its
    newline). A record whose check is already set is left as it is."""
    if buffer.endswith(_UNSEALED_TAIL):
        crc = zlib.crc32(buffer[start:] if start else buffer)
        buffer[-2:-2] = b"%08x" % crc


def decision_intact(line: bytes) -> bool | None:
    """Whether a decision line matches its check; None when it carries none (an older log)."""
    if line.endswith(_UNSEALED_TAIL):
        return None
    if len(line) < _SEALED_LENGTH or line[-_SEALED_LENGTH:-10] != _SEALED_HEAD:
        return False  # the check itself was removed or mangled
    try:
        recorded = int(line[-10:-2], 16)
    except ValueError:
        return False
    return zlib.crc32(line[:-10] + b'"}') == recorded
