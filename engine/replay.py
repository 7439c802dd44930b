"""Rebuild a run from its log alone: the world, the policies and the agents' memories, tick by tick.

Nothing is asked of a model. The header holds the resolved config and the seed; each tick's
decisions hold the actions and the policy fields; re-applying them with the run's own seeded
streams must give the digest the tick record holds, or the log was edited or the world is not
deterministic, and ``ReplayError`` names the file and line.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from types import GenericAlias
from typing import Any

import msgspec

from engine.config import ConfigError, InferenceSection, check
from engine.log import (
    LOG_NAME,
    LineChunks,
    LogFormatError,
    gc_paused,
    numbered_records,
    sort_by_kind,
)
from engine.plugins import load_plugin
from engine.protocols import Agent, Policy, World, WorldPrompts
from engine.records import (
    AgentId,
    AnyRecord,
    Decision,
    Like,
    Post,
    Resumed,
    RunEnd,
    RunHeader,
    TickEnd,
)
from engine.scheduler import state_digest
from engine.seeding import Seeds


class ReplayError(ValueError):
    pass


@dataclass
class LoggedRun:
    """A run's log, read once and indexed by tick."""

    path: Path
    header: RunHeader
    decisions: dict[int, list[Decision]] = field(default_factory=lambda: defaultdict(list))
    ticks: dict[int, tuple[int, TickEnd]] = field(default_factory=dict)
    posts: dict[int, list[Post]] = field(default_factory=lambda: defaultdict(list))
    likes: dict[int, list[Like]] = field(default_factory=lambda: defaultdict(list))
    end: RunEnd | None = None
    lines: int = 0
    torn: bool = False

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


_ANY_RECORD: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(AnyRecord)
_DECISIONS = msgspec.json.Decoder(Decision)
_TICKS = msgspec.json.Decoder(TickEnd)
_POSTS = msgspec.json.Decoder(Post)
_LIKES = msgspec.json.Decoder(Like)


def _read_by_kind(path: Path) -> LoggedRun | None:
    """Each chunk's lines sorted by kind, each kind decoded by its own typed decoder in C.

    None when anything is amiss (a line that does not decode, or a record of a bulk kind among
    the few others, whose place in its tick's list only the exact path keeps): the exact
    line-by-line path then reads the log, or names the file and line at fault.
    """
    header: RunHeader | None = None
    decisions: list[Decision] = []
    ticks: list[TickEnd] = []
    posts: list[Post] = []
    likes: list[Like] = []
    tick_numbers: list[int] = []
    end: RunEnd | None = None
    number = 1  # of the next line
    chunks = LineChunks(path)
    for lines in chunks:
        if header is None:
            try:
                first = _ANY_RECORD.decode(lines[0])
            except msgspec.DecodeError:
                return None
            if not isinstance(first, RunHeader):
                return None
            header = first
            del lines[0]
            number = 2
        by_kind = sort_by_kind(lines, first_number=number)
        if by_kind is None:
            return None
        try:
            # map: the decoders loop in C, a million records with no Python-level loop.
            decisions += map(_DECISIONS.decode, by_kind.bulk["decision"])
            ticks += map(_TICKS.decode, by_kind.bulk["tick"])
            posts += map(_POSTS.decode, by_kind.bulk["post"])
            likes += map(_LIKES.decode, by_kind.bulk["like"])
            others = [_ANY_RECORD.decode(line) for _, line in by_kind.others]
        except msgspec.DecodeError:
            return None
        for other in others:
            if isinstance(other, RunEnd):
                end = other
            elif not isinstance(other, RunHeader | Resumed):
                return None
        tick_numbers += by_kind.numbers["tick"].tolist()
        number += len(lines)
    if header is None:
        return None
    last_line = number - 1
    logged = LoggedRun(path=path, header=header, end=end, lines=last_line if last_line > 1 else 0)
    by_tick = attrgetter("tick")
    for tick, decided in groupby(decisions, by_tick):
        logged.decisions[tick].extend(decided)
    for tick, posted in groupby(posts, by_tick):
        logged.posts[tick].extend(posted)
    for tick, liked in groupby(likes, by_tick):
        logged.likes[tick].extend(liked)
    for line, record in zip(tick_numbers, ticks, strict=True):
        logged.ticks[record.tick] = (line, record)
    logged.torn = chunks.torn != b""
    return logged


def _read_in_order(path: Path, data: bytes) -> LoggedRun:
    numbered = numbered_records(path, data, allow_torn_tail=True)
    try:
        first = next(numbered, None)
        if first is None:
            raise ReplayError(f"{path}: empty; an agora log starts with a 'run' header record")
        _, header = first
        assert isinstance(header, RunHeader)
        logged = LoggedRun(path=path, header=header)
        for number, record in numbered:
            logged.lines = number
            if isinstance(record, Decision):
                logged.decisions[record.tick].append(record)
            elif isinstance(record, TickEnd):
                logged.ticks[record.tick] = (number, record)
            elif isinstance(record, Post):
                logged.posts[record.tick].append(record)
            elif isinstance(record, Like):
                logged.likes[record.tick].append(record)
            elif isinstance(record, RunEnd):
                logged.end = record
    except LogFormatError as exc:
        raise ReplayError(str(exc)) from None
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
                self.policies.append(plugin.build(policy_config, self.seeds, name))
        except (ConfigError, KeyError) as exc:
            raise ReplayError(
                f"{logged.path}:1: the run header cannot be rebuilt ({exc})"
            ) from None
        self.parts = parts
        self.world: World = parts.world
        self.prompts: WorldPrompts = parts.prompts
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
        if self.world.independent:
            for agent, action in sorted(actions.items()):
                rng = self.seeds.rng("conflicts", tick, agent)
                self._remember(tick, self.world.apply(tick, {agent: action}, rng))
        else:
            ordered = dict(sorted(actions.items()))
            self._remember(tick, self.world.apply(tick, ordered, self.seeds.rng("conflicts", tick)))
        for policy in self.policies:
            policy.end_tick(tick)
        digest = state_digest(self.world, self.policies, tick)
        if digest != recorded.digest:
            raise ReplayError(
                f"{self.logged.path}:{line}: tick {tick} replays to digest {digest}, but the log "
                f"records {recorded.digest}: the log was changed, or the world is not deterministic"
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
        agents = self.agents
        for agent, outcome in outcomes.items():
            agents[agent].remember(tick, outcome)


def _unbuildable(path: Path, exc: Exception) -> ReplayError:
    return ReplayError(f"{path}:1: the run header cannot be rebuilt ({exc})")
