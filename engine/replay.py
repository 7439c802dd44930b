"""Rebuild a run from its log alone: the world, the policies and the agents' memories, tick by tick.

Nothing is asked of a model. The header holds the resolved config and the seed; each tick's
decisions hold the actions and the policy fields; re-applying them with the run's own seeded
streams must give the digest the tick record holds, or the log was edited or the world is not
deterministic, and ``ReplayError`` names the file and line: of the decision whose check no
longer matches its line when one was edited (``integrity.py``), else of the tick.

``read_run`` gives the run's *effective* records. The log is only ever appended to, so a resume
that asks errored decisions again writes a ``resume`` record with ``rollback`` set: every record
logged before it for a tick at or after its tick is superseded (the decisions it keeps are
logged again after it). Should a log hold two decisions of one (tick, agent) anyway, the last
one counts. An ``end`` record followed by a ``resume`` one no longer says how the run ended.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, groupby
from operator import attrgetter
from pathlib import Path
from types import GenericAlias
from typing import Any, Protocol, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from agora.engine.config import ConfigError, InferenceSection, check
from agora.engine.integrity import CHECKS_FORMAT, decision_intact, header_edited
from agora.engine.log import (
    ENGINE_BULK_KINDS,
    ENGINE_RECORDS,
    LOG_NAME,
    LineChunks,
    LogFormatError,
    gc_paused,
    numbered_records,
    opening,
    run_records,
    sort_by_kind,
)
from agora.engine.plugins import load_plugin
from agora.engine.protocols import (
    Agent,
    Missed,
    Policy,
    Remembers,
    World,
    WorldPrompts,
    show_policies,
)
from agora.engine.record_kinds import RunRecords, world_records
from agora.engine.records import (
    AgentId,
    Decision,
    LogRecord,
    Resumed,
    RunEnd,
    RunHeader,
    TickEnd,
)
from agora.engine.scheduler import state_digest
from agora.engine.seeding import Seeds


class ReplayError(ValueError):
    pass


@dataclass
class LoggedRun:
    """A run's log, read once and indexed by tick."""

    path: Path
    header: RunHeader
    decisions: dict[int, list[Decision]] = field(default_factory=lambda: defaultdict(list))
    ticks: dict[int, tuple[int, TickEnd]] = field(default_factory=dict)
    # The records of each kind the world and the policies declare, by kind then tick (every
    # declared kind has an entry, a kind with no record an empty one).
    records: dict[str, dict[int, list[LogRecord]]] = field(default_factory=dict)
    # The run's record types, as its header declares them.
    kinds: RunRecords = field(default_factory=RunRecords)
    end: RunEnd | None = None
    lines: int = 0
    torn: bool = False
    # Every resume record with its line, in log order.
    resumes: list[tuple[int, Resumed]] = field(default_factory=list)
    # Decision records left out because a later record supersedes them.
    superseded: int = 0
    # What superseded decisions cost (requests, billed tokens, USD), copies of kept ones aside:
    # paid for, so budgets and totals still count it.
    superseded_spend: tuple[int, int, float] = (0, 0, 0.0)

    @property
    def last_tick(self) -> int:
        """The last tick whose record was written (-1: none)."""
        return max(self.ticks, default=-1)


def read_run(run: str | Path) -> LoggedRun:
    """Read ``run`` (a run directory or its log file); a torn last line is noted, not fatal."""
    run = Path(run)
    path = run / LOG_NAME if run.is_dir() else run
    if not path.exists():
        raise ReplayError(f"{path}: no such log (is {run} a run directory?)")
    with gc_paused():
        logged = _read_by_kind(path)
        if logged is None:
            data = path.read_bytes()
            logged = _read_in_order(path, data)
            logged.torn = not data.endswith(b"\n")
    return logged


def _unedited(path: Path, header: RunHeader) -> RunHeader:
    """``header``, checked before anything is read by it (the kinds it lists above all)."""
    if header_edited(header):
        raise ReplayError(
            f"{path}:1: the run header was edited (its hash does not match); resume and replay "
            "rebuild the run from it: put back the header as the run wrote it"
        )
    return header


_DECISIONS = msgspec.json.Decoder(Decision)
_TICKS = msgspec.json.Decoder(TickEnd)


def _read_by_kind(path: Path) -> LoggedRun | None:
    """Each chunk's lines sorted by kind, each kind decoded by its own typed decoder in C.

    None when anything is amiss (a line that does not decode, or a record of a bulk kind among
    the few others, whose place in its tick's list only the exact path keeps): the exact
    line-by-line path then reads the log, or names the file and line at fault.
    """
    header: RunHeader | None = None
    kinds = ENGINE_RECORDS
    bulk: tuple[str, ...] = ENGINE_BULK_KINDS
    decisions: list[Decision] = []
    ticks: list[TickEnd] = []
    declared: dict[str, list[LogRecord]] = {}
    numbers: dict[str, list[NDArray[np.int64]]] = {}
    ends: list[tuple[int, RunEnd]] = []
    resumes: list[tuple[int, Resumed]] = []
    number = 1  # of the next line
    chunks = LineChunks(path)
    for lines in chunks:
        if header is None:
            try:
                first = ENGINE_RECORDS.decoder.decode(lines[0])
            except msgspec.DecodeError:
                return None
            if not isinstance(first, RunHeader):
                return None
            header = _unedited(path, first)
            try:
                kinds = run_records(path, header)
            except LogFormatError as exc:
                raise ReplayError(str(exc)) from None
            bulk = (*ENGINE_BULK_KINDS, *kinds.declared)
            declared = {kind: [] for kind in kinds.declared}
            numbers = {kind: [] for kind in bulk}
            del lines[0]
            number = 2
        by_kind = sort_by_kind(lines, bulk, first_number=number)
        if by_kind is None:
            return None
        try:
            # map: the decoders loop in C, a million records with no Python-level loop.
            decisions += map(_DECISIONS.decode, by_kind.bulk["decision"])
            ticks += map(_TICKS.decode, by_kind.bulk["tick"])
            for kind, records in declared.items():
                records += map(kinds.decoder_of(kind).decode, by_kind.bulk[kind])
            others = [(n, kinds.decoder.decode(line)) for n, line in by_kind.others]
        except msgspec.DecodeError:
            return None
        for line_number, other in others:
            if isinstance(other, RunEnd):
                ends.append((line_number, other))
            elif isinstance(other, Resumed):
                resumes.append((line_number, other))
            elif not isinstance(other, RunHeader):
                return None
        for kind in bulk:
            numbers[kind].append(by_kind.numbers[kind])
        number += len(lines)
    if header is None:
        return None
    last_line = number - 1
    logged = LoggedRun(
        path=path, header=header, lines=last_line if last_line > 1 else 0, kinds=kinds
    )
    joined = {
        kind: np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        for kind, arrays in numbers.items()
    }
    _fill(
        logged,
        (decisions, joined["decision"]),
        (ticks, joined["tick"]),
        {kind: (records, joined[kind]) for kind, records in declared.items()},
        ends,
        resumes,
    )
    logged.torn = chunks.torn != b""
    return logged


class _Ticked(Protocol):
    @property
    def tick(self) -> int: ...


_R = TypeVar("_R", bound=_Ticked)
_Numbered = tuple[list[_R], NDArray[np.int64]]


def _fill(
    logged: LoggedRun,
    decided: _Numbered[Decision],
    closed: _Numbered[TickEnd],
    declared: dict[str, _Numbered[Any]],
    ends: list[tuple[int, RunEnd]],
    resumes: list[tuple[int, Resumed]],
) -> None:
    """Index the log's records by tick, leaving out what a later resume supersedes."""
    logged.resumes = resumes
    rollbacks = [(line, record.tick) for line, record in resumes if record.rollback]
    decisions = _effective(*decided, rollbacks)
    ticks = _effective(*closed, rollbacks)
    if resumes:
        decisions = _last_of_each(decisions)
    logged.superseded = len(decided[0]) - len(decisions[0])
    if logged.superseded:
        logged.superseded_spend = _superseded_spend(decided[0], decisions[0])
    last_resume = resumes[-1][0] if resumes else 0
    logged.end = next((end for line, end in reversed(ends) if line > last_resume), None)
    by_tick = attrgetter("tick")
    for tick, group in groupby(decisions[0], by_tick):
        logged.decisions[tick].extend(group)
    for kind, numbered in declared.items():
        by_tick_of_kind: dict[int, list[LogRecord]] = defaultdict(list)
        for tick, kind_group in groupby(_effective(*numbered, rollbacks)[0], by_tick):
            by_tick_of_kind[tick].extend(kind_group)
        logged.records[kind] = by_tick_of_kind
    for line, record in zip(ticks[1].tolist(), ticks[0], strict=True):
        logged.ticks[record.tick] = (line, record)


def spend_key(decision: Decision) -> tuple[Any, ...]:
    """What tells a decision apart from the copy a rollback logs again of it."""
    return (decision.tick, decision.agent, decision.prompt_hash, decision.raw, decision.requests)


def spend_of(decisions: Iterable[Decision]) -> tuple[int, int, float]:
    requests = billed = 0
    cost = 0.0
    for d in decisions:
        requests += d.requests
        billed += 0 if d.cached else d.tokens_in + d.tokens_out
        cost += d.cost_usd
    return requests, billed, cost


def _superseded_spend(every: list[Decision], kept: list[Decision]) -> tuple[int, int, float]:
    copies = Counter(spend_key(d) for d in kept)
    effective = {id(d) for d in kept}
    paid = []
    for decision in every:
        if id(decision) in effective:
            continue
        key = spend_key(decision)
        if copies[key] > 0:
            copies[key] -= 1  # the original of a decision logged again: counted once
            continue
        paid.append(decision)
    return spend_of(paid)


def _effective(
    records: list[_R], numbers: NDArray[np.int64], rollbacks: Sequence[tuple[int, int]]
) -> _Numbered[_R]:
    """``records`` (numbered by line) without those a rollback after them supersedes."""
    if not rollbacks or not records:
        return records, numbers
    ticks = np.fromiter((r.tick for r in records), dtype=np.int64, count=len(records))
    keep = np.ones(len(records), dtype=bool)
    for line, tick in rollbacks:
        keep &= (numbers > line) | (ticks < tick)
    return list(compress(records, keep.tolist())), numbers[keep]


def _last_of_each(decisions: _Numbered[Decision]) -> _Numbered[Decision]:
    """One decision per (tick, agent): the last one logged."""
    records, numbers = decisions
    last = {(d.tick, d.agent): i for i, d in enumerate(records)}
    if len(last) == len(records):
        return decisions
    keep = sorted(last.values())
    return [records[i] for i in keep], numbers[keep]


def _read_in_order(path: Path, data: bytes) -> LoggedRun:
    # Decoded as the kinds the header declares (the reader finds them once it has read it).
    numbered = numbered_records(path, data, allow_torn_tail=True)
    try:
        first = next(numbered, None)
        if first is None:
            raise ReplayError(f"{path}: empty; an agora log starts with a 'run' header record")
        _, header = first
        assert isinstance(header, RunHeader)
        kinds = run_records(path, _unedited(path, header))
        logged = LoggedRun(path=path, header=header, kinds=kinds)
        bulk = (*ENGINE_BULK_KINDS, *kinds.declared)
        found: dict[str, tuple[list[Any], list[int]]] = {kind: ([], []) for kind in bulk}
        ends: list[tuple[int, RunEnd]] = []
        resumes: list[tuple[int, Resumed]] = []
        for number, record in numbered:
            logged.lines = number
            if isinstance(record, RunEnd):
                ends.append((number, record))
            elif isinstance(record, Resumed):
                resumes.append((number, record))
            elif not isinstance(record, RunHeader):
                records, lines = found[record.__struct_config__.tag]  # type: ignore[index]
                records.append(record)
                lines.append(number)
    except LogFormatError as exc:
        raise ReplayError(str(exc)) from None
    arrays = {kind: (r, np.array(n, dtype=np.int64)) for kind, (r, n) in found.items()}
    declared = {kind: arrays[kind] for kind in kinds.declared}
    _fill(logged, arrays["decision"], arrays["tick"], declared, ends, resumes)
    return logged


class Replayer:
    """Steps a rebuilt run forward; ``tick`` is the last tick applied (-1 before the first)."""

    def __init__(self, logged: LoggedRun) -> None:
        self.logged = logged
        header = logged.header
        config = header.config
        try:
            self.world_plugin = load_plugin("world", header.world, "world.kind")
            world_config = check(config["world"], self.world_plugin.config_type, "world")
            agent_plugin = load_plugin("agents", str(config["agents"].get("kind", "llm")), "agents")
            agent_config = check(config["agents"], agent_plugin.config_type, "agents")
            self.seeds = Seeds(header.seed)
            parts = self.world_plugin.build(world_config, self.seeds)
            self.policies: list[Policy] = []
            for name, section in config.get("policies", {}).items():
                if not section.get("enabled", True):
                    continue
                plugin = load_plugin("policy", str(section["kind"]), f"policies.{name}")
                settings = {k: v for k, v in section.items() if k != "enabled"}
                policy_config = check(settings, plugin.config_type, f"policies.{name}")
                self.policies.append(plugin.build(policy_config, self.seeds, name, parts.world))
            show_policies(parts.world, self.policies)
        except (ConfigError, KeyError) as exc:
            raise ReplayError(
                f"{logged.path}:1: the run header cannot be rebuilt ({exc})"
            ) from None
        self.parts = parts
        self.world: World = parts.world
        self.prompts: WorldPrompts = parts.prompts
        self.offline_memory = parts.offline if isinstance(parts.offline, Remembers) else None
        try:
            sampling = check(config.get("inference", {}), InferenceSection, "inference")
        except ConfigError as exc:
            raise ReplayError(
                f"{logged.path}:1: the run header cannot be rebuilt ({exc})"
            ) from None
        self.agents: dict[AgentId, Agent] = agent_plugin.build(
            agent_config, self.world.agent_ids(), self.prompts, self.policies, sampling
        )
        self.tick = -1

    def step(self) -> TickEnd:
        """Apply the next tick from the log and check its digest against the recorded one."""
        tick = self.tick + 1
        if tick not in self.logged.ticks:
            raise ReplayError(f"{self.logged.path}: the log has no record of tick {tick}")
        line, recorded = self.logged.ticks[tick]
        decisions = self.logged.decisions.get(tick, [])
        # Once per decision of the run: each policy's methods are bound once a tick.
        hooks = [(policy.view, policy.absorb) for policy in self.policies]
        for decision in decisions:
            agent = decision.agent
            if decision.valid:
                for view_of, absorb in hooks:
                    absorb(tick, agent, decision.fields, view_of(agent, tick))
            else:
                for view_of, _ in hooks:
                    view_of(agent, tick)
        valid = [decision for decision in decisions if decision.valid]
        actions = dict(
            zip([d.agent for d in valid], self._actions([d.action for d in valid]), strict=True)
        )
        missed: dict[AgentId, Missed] = {
            d.agent: "error" if d.error is not None else "invalid"
            for d in sorted(decisions, key=attrgetter("agent"))
            if not d.valid
        }
        if self.world.independent:
            for agent in sorted({*actions, *missed}):
                rng = self.seeds.rng("conflicts", tick, agent)
                one = {agent: actions[agent]} if agent in actions else {}
                alone: dict[AgentId, Missed] = {agent: missed[agent]} if agent in missed else {}
                self._remember(tick, self.world.apply(tick, one, rng, alone))
        else:
            ordered = dict(sorted(actions.items()))
            rng = self.seeds.rng("conflicts", tick)
            self._remember(tick, self.world.apply(tick, ordered, rng, missed))
        # The records the world and the policies make again are the log's own (read with
        # it, by kind and tick): the world's are taken so it forgets them, as in the run.
        world_records(self.world, tick)
        for policy in self.policies:
            policy.end_tick(tick)
        digest = state_digest(self.world, self.policies, tick)
        if digest != recorded.digest:
            mismatch = f"tick {tick} replays to digest {digest}, not the {recorded.digest} logged"
            edited = next(edited_decisions(self.logged, tick), None)
            if edited is not None:
                number, agent = edited
                raise ReplayError(
                    f"{self.logged.path}:{number}: the decision of agent {agent} in tick {tick} "
                    f"was edited (its check does not match the line); {mismatch}"
                )
            raise ReplayError(
                f"{self.logged.path}:{line}: {mismatch}: the log was changed, or the world is "
                "not deterministic"
            )
        self.tick = tick
        return recorded

    def _actions(self, logged: list[Any]) -> list[Any]:
        """The world's actions from their logged form, converted in one call."""
        action_type = self.world_plugin.action_type
        try:
            converted: list[Any] = msgspec.convert(logged, GenericAlias(list, (action_type,)))
        except msgspec.ValidationError:
            # Each alone, so the error is the one a single action's conversion raises.
            converted = [msgspec.convert(action, action_type) for action in logged]
        return converted

    def advance_to(self, tick: int) -> None:
        # Replay builds outcomes and memories by the hundred thousand and no cycles among them.
        with gc_paused():
            while self.tick < tick:
                self.step()

    def _remember(self, tick: int, outcomes: dict[AgentId, Any]) -> None:
        # As the run told them (TurnRunner.remember): agents' memories and the offline
        # behaviour's own state are rebuilt alike, so a resume goes on where the run was.
        agents, offline = self.agents, self.offline_memory
        for agent, outcome in outcomes.items():
            agents[agent].remember(tick, outcome)
            if offline is not None:
                offline.remember(agent, tick, outcome)


class _Where(msgspec.Struct):
    tick: int
    agent: AgentId


_WHERE = msgspec.json.Decoder(_Where)
_DECISION = opening("decision")


def edited_decisions(logged: LoggedRun, tick: int | None = None) -> Iterator[tuple[int, AgentId]]:
    """(line, agent) of each decision line (of ``tick``, or of any) that its check does not
    match, superseded lines included; none for logs older than the checks."""
    if logged.header.format < CHECKS_FORMAT:
        return
    number = 0
    for lines in LineChunks(logged.path):
        for line in lines:
            number += 1
            if not line.startswith(_DECISION) or decision_intact(line) is not False:
                continue
            try:
                where = _WHERE.decode(line)
            except msgspec.DecodeError:
                yield number, -1
                continue
            if tick is None or where.tick == tick:
                yield number, where.agent


def check_decisions(logged: LoggedRun) -> None:
    """Raise ``ReplayError`` naming the first decision line that its check does not match."""
    for number, agent in edited_decisions(logged):
        raise ReplayError(
            f"{logged.path}:{number}: the decision of agent {agent} was edited (its check does "
            "not match the line)"
        )


def _unbuildable(path: Path, exc: Exception) -> ReplayError:
    return ReplayError(f"{path}:1: the run header cannot be rebuilt ({exc})")
