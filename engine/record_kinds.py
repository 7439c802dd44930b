"""Record kinds beyond the engine's own: worlds and policies declare the ``LogRecord`` types they
log, the run header lists them, and every reader decodes a log with a decoder built for exactly
the kinds its run declared.

Declaring is a typed optional capability of the *plugin* (``DeclaresRecords``), not of what it
builds: a reader that has only a log finds the plugins by the names its header holds (the world
plugin, each policy's ``kind``) and reads their ``record_types`` without building a world.
A world that logs records of its own implements ``EmitsRecords``: each tick's records are taken
when the tick closes and written in the one write that holds its ``tick`` record.

Nothing is dropped silently: the writer refuses a record of a kind the run did not declare, and
the readers refuse a line of one, naming its file and line.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import reduce
from typing import Any, Protocol, runtime_checkable

import msgspec

from agora.engine.config import ConfigError
from agora.engine.integrity import RECORDS_FORMAT
from agora.engine.plugins import load_plugin
from agora.engine.records import Decision, LogRecord, Resumed, RunEnd, RunHeader, TickEnd

# The engine's own kinds: every run has them, none may be declared again.
BUILTIN_TYPES: tuple[type[LogRecord], ...] = (RunHeader, Decision, TickEnd, Resumed, RunEnd)
# Who declares a kind, as the header names it: the world, or a policy by its config section.
WORLD = "world"
POLICIES = "policies."


def kind_of(record_type: type[LogRecord]) -> str:
    tag = record_type.__struct_config__.tag
    assert isinstance(tag, str), "LogRecord subclasses are tagged by name"
    return tag


BUILTIN_KINDS: frozenset[str] = frozenset(map(kind_of, BUILTIN_TYPES))


@runtime_checkable
class DeclaresRecords(Protocol):
    """A world or policy plugin that logs records of its own kinds (``LogRecord`` subclasses,
    each with its own ``tag`` and a ``tick: int`` field)."""

    @property
    def record_types(self) -> Sequence[type[LogRecord]]: ...


@runtime_checkable
class EmitsRecords(Protocol):
    """A world that logs records of its own (declared by its plugin).

    ``tick_records(tick)`` is called once when ``tick`` closes, after every ``apply`` of it, in
    a run and in a replay alike; it returns what those ``apply`` calls produced and forgets
    them. On the free-running scheduler later ticks may already have been applied then: keep
    the records by tick."""

    def tick_records(self, tick: int) -> Sequence[LogRecord]: ...


def declared_types(plugin: Any) -> tuple[type[LogRecord], ...]:
    return tuple(plugin.record_types) if isinstance(plugin, DeclaresRecords) else ()


def world_records(world: Any, tick: int) -> Sequence[LogRecord]:
    """The records the world made in ``tick`` (none for a world that makes none)."""
    return world.tick_records(tick) if isinstance(world, EmitsRecords) else ()


# A kind is written between quotes at the start of each line and read back by its bytes there:
# plain ASCII names only, so JSON never escapes one.
_KIND_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _checked(record_type: Any, field: str) -> str:
    if not (
        isinstance(record_type, type)
        and issubclass(record_type, LogRecord)
        and record_type is not LogRecord
    ):
        raise ConfigError(
            f"{field}: record_types holds {record_type!r}, which is not a LogRecord subclass "
            '(class Note(LogRecord, tag="note"))'
        )
    kind = kind_of(record_type)
    if not _KIND_NAME.fullmatch(kind):
        raise ConfigError(
            f"{field}: record kind {kind!r} of {record_type.__name__}: a kind is letters, digits "
            "and _, starting with a letter"
        )
    if kind in BUILTIN_KINDS:
        raise ConfigError(f"{field}: record kind {kind!r} is one of the engine's own")
    types = {f.name: f.type for f in msgspec.structs.fields(record_type)}
    if types.get("tick") is not int:
        # Records are kept, superseded by a rollback and resumed by their tick.
        raise ConfigError(f"{field}: record kind {kind!r} needs a `tick: int` field")
    return kind


def declare(world_plugin: Any, policies: Iterable[tuple[str, Any]]) -> RunRecords:
    """The record types a run's plugins declare, each kind with who declares it (``world``,
    ``policies.<name>``) for the run header; ``ConfigError`` naming the config field of a bad
    declaration."""
    kinds: dict[str, str] = {}
    types: dict[str, type[LogRecord]] = {}
    declarers = [(WORLD, world_plugin, "world.kind")]
    declarers += [(POLICIES + name, plugin, f"policies.{name}.kind") for name, plugin in policies]
    for where, plugin, field in declarers:
        try:
            declared = declared_types(plugin)
        except TypeError:
            raise ConfigError(f"{field}: record_types must be a sequence of types") from None
        for record_type in declared:
            kind = _checked(record_type, field)
            if kind in types and types[kind] is not record_type:
                raise ConfigError(
                    f"{field}: record kind {kind!r} is declared by {kinds[kind]} too, as "
                    "another type; each kind has one type in a run"
                )
            # Two policies of one plugin declare the same type: one kind, named by the first.
            kinds.setdefault(kind, where)
            types.setdefault(kind, record_type)
    return RunRecords(types, kinds)


class _Kind(msgspec.Struct):
    kind: Any = None


_KIND = msgspec.json.Decoder(_Kind)


def kind_in(line: bytes) -> str | None:
    """The kind a line says it is, read whatever its spacing; None for no JSON object with a
    text ``kind``."""
    try:
        kind = _KIND.decode(line).kind
    except msgspec.DecodeError:
        return None
    return kind if isinstance(kind, str) else None


def why_not(line: bytes, problem: str, declared: Iterable[str]) -> str:
    """Why ``line`` is no record of a run that declared ``declared``: a kind it did not
    declare, or ``problem`` (what decoding it said)."""
    kind = kind_in(line)
    names = sorted(declared)
    if kind is not None and kind not in BUILTIN_KINDS and kind not in names:
        return (
            f"not an agora log record (kind {kind!r} is declared by neither the run's world nor "
            f"its policies; its header declares: {', '.join(names) or 'none'})"
        )
    return f"not an agora log record ({problem})"


class RunRecords:
    """The record types of one run: the engine's and the ones its header declares, with the
    decoders its readers use (a tagged union of all of them, and one per declared kind)."""

    def __init__(
        self,
        declared: Mapping[str, type[LogRecord]] | None = None,
        declarers: Mapping[str, str] | None = None,
    ) -> None:
        self.declared: dict[str, type[LogRecord]] = dict(declared or {})
        # kind → who declares it, as the header says.
        self.declarers: dict[str, str] = dict(declarers or {})
        every = (*BUILTIN_TYPES, *self.declared.values())
        self.types: frozenset[type[LogRecord]] = frozenset(every)
        self.kinds: frozenset[str] = BUILTIN_KINDS | self.declared.keys()
        union: Any = reduce(operator.or_, every)
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(union)
        self._by_kind: dict[str, msgspec.json.Decoder[Any]] = {}

    def decoder_of(self, kind: str) -> msgspec.json.Decoder[Any]:
        """A decoder of one declared kind alone (the fast readers sort lines by kind first)."""
        decoder = self._by_kind.get(kind)
        if decoder is None:
            decoder = self._by_kind[kind] = msgspec.json.Decoder(self.declared[kind])
        return decoder

    def why_not(self, line: bytes, exc: msgspec.DecodeError) -> str:
        """Why ``line`` is no record of this run: a kind it did not declare, or a bad record."""
        return why_not(line, str(exc), self.declared)

    @classmethod
    def of_header(cls, header: RunHeader) -> RunRecords:
        """The types of the kinds ``header`` lists, from the plugins it names; ``ConfigError``
        when a plugin cannot be found or no longer declares a kind the log holds."""
        plugins: dict[str, Any] = {}
        kinds = header.records
        if header.format < RECORDS_FORMAT and not kinds:
            # Written before headers listed their kinds: the plugins' declarations stand in.
            world = _plugin_of(header, WORLD)
            policies = [(n, _plugin_of(header, POLICIES + n)) for n in _enabled_policies(header)]
            return declare(world, policies)
        declared: dict[str, type[LogRecord]] = {}
        for kind, where in kinds.items():
            plugin = plugins.get(where)
            if plugin is None:
                plugin = plugins[where] = _plugin_of(header, where)
            found = [t for t in declared_types(plugin) if kind_of(t) == kind]
            if not found:
                raise ConfigError(
                    f"record kind {kind!r}: the log holds it from {where}, whose plugin no "
                    "longer declares it"
                )
            declared[kind] = found[0]
        return cls(declared, kinds)


def declared_kinds(header: RunHeader) -> list[str]:
    """The kinds the run of ``header`` declares, by name: read from the header (a reader that
    needs no types imports no plugin), or from the plugins for a header older than the list."""
    if header.records or header.format >= RECORDS_FORMAT:
        return list(header.records)
    return list(RunRecords.of_header(header).declared)


def _enabled_policies(header: RunHeader) -> list[str]:
    sections = header.config.get("policies", {})
    return [name for name, section in sections.items() if section.get("enabled", True)]


def _plugin_of(header: RunHeader, where: str) -> Any:
    if where == WORLD:
        return load_plugin("world", header.world, "world.kind")
    name = where.removeprefix(POLICIES)
    section = header.config.get("policies", {}).get(name) if where.startswith(POLICIES) else None
    if not isinstance(section, dict) or "kind" not in section:
        raise ConfigError(f"record kinds: the header names {where!r}, which its config lacks")
    return load_plugin("policy", str(section["kind"]), f"policies.{name}.kind")


def _encoded(record: LogRecord) -> bytes:
    return msgspec.json.encode(record)


class LoggedRecords:
    """Records of ticks a stopped run did not close that its log already holds.

    The resumed run rebuilds its state and reuses the same turns, so it makes these records
    again; each is logged once. A multiset of the records as encoded: every logged copy stands
    for one made again, so two equal records made by two turns are both kept."""

    def __init__(self, records: Iterable[LogRecord] = ()) -> None:
        self._left: Counter[bytes] = Counter(map(_encoded, records))

    def __len__(self) -> int:
        return self._left.total()

    def take(self, record: LogRecord) -> bool:
        """True (once per logged copy) when ``record`` is already in the log."""
        left = self._left
        if not left:  # every run that is not resuming, and a resumed one once caught up
            return False
        key = _encoded(record)
        count = left.get(key, 0)
        if count == 0:
            return False
        if count == 1:
            del left[key]
        else:
            left[key] = count - 1
        return True
