"""Schedulers: how turns are laid out in time. The world's ``independent`` flag picks one.

``LockstepScheduler``: every active agent decides on the same state, answers are logged as they
arrive, and when all are in the world applies them at once (simultaneous decisions).

``FreeRunningScheduler``: for worlds whose agents share no state between turns; each agent starts
its next turn as soon as its last answer is in, with no tick barrier. A tick record is written
once every agent has finished that tick, so the log keeps one ``tick`` record per tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from agora.engine.protocols import Missed, Policy, World
from agora.engine.record_kinds import world_records
from agora.engine.records import AgentId, LogRecord, TickEnd
from agora.engine.turns import TickTally, TurnResult, TurnRunner

_log = structlog.get_logger("agora.scheduler")


class RunStoppedError(Exception):
    """The run ended early on purpose (a budget); the log so far is whole and resumable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


StopCheck = Callable[[], "str | None"]


class Scheduler(Protocol):
    name: str

    async def run(self, first_tick: int, ticks: int) -> None: ...


def state_digest(world: World, policies: Sequence[Policy], tick: int) -> str:
    """The world's digest combined with every policy's, so the policies' state is part of it."""
    digest = hashlib.blake2b(world.digest(tick).encode(), digest_size=16)
    for policy in policies:
        digest.update(policy.name.encode())
        digest.update(policy.digest().encode())
    return digest.hexdigest()


def _close_tick(
    runner: TurnRunner, tick: int, tally: TickTally, wall_s: float, on_tick: TickHook | None
) -> None:
    policies: dict[str, Any] = {}
    # What the world made in the tick's ``apply`` calls, then what the policies make closing it.
    closing: list[LogRecord] = [*world_records(runner.world, tick)]
    for policy in runner.policies:
        records, metrics = policy.end_tick(tick)
        closing.extend(records)
        policies[policy.name] = metrics
    # A resumed run may have logged some of this tick's records before it stopped.
    closing = [r for r in closing if not runner.logged_before(r)]
    record = TickEnd(
        tick=tick,
        decisions=tally.decisions,
        valid=tally.valid,
        invalid=tally.invalid,
        errors=tally.errors,
        metrics=runner.world.metrics(tick),
        policies=policies,
        digest=state_digest(runner.world, runner.policies, tick),
        wall_s=round(wall_s, 6),
    )
    # One write: a kill leaves the tick's closing records and its tick record together, or none.
    runner.log.append_many([*closing, record])
    if runner.tick_sync is not None:
        runner.tick_sync()
    else:
        runner.log.sync()
    if on_tick is not None:
        on_tick(record)


def _missed(result: TurnResult) -> Missed:
    """Why a turn gave no action: an invalid answer (a valid one's action is None) or none."""
    return "error" if result.status == "error" else "invalid"


class TickHook(Protocol):
    def __call__(self, record: TickEnd) -> None: ...


@dataclass
class LockstepScheduler:
    runner: TurnRunner
    concurrency: int
    on_tick: TickHook | None = None
    clock: Callable[[], float] = time.perf_counter
    should_stop: StopCheck | None = None
    # Turns already decided and logged before a crash: applied again, never asked again.
    reuse: Mapping[tuple[int, AgentId], TurnResult] = field(default_factory=dict)
    name: str = "lockstep"

    async def run(self, first_tick: int, ticks: int) -> None:
        for tick in range(first_tick, ticks):
            await self.step(tick)
            reason = self.should_stop() if self.should_stop is not None else None
            if reason is not None and tick + 1 < ticks:
                raise RunStoppedError(reason)

    async def step(self, tick: int) -> None:
        runner = self.runner
        started = self.clock()
        active = runner.world.active_agents(tick, runner.seeds.rng("activation", tick))
        actions: dict[AgentId, Any] = {}
        missed: dict[AgentId, Missed] = {}
        tally = TickTally()

        def settle(result: TurnResult) -> None:
            tally.add(result.status)
            if result.action is not None:
                actions[result.agent_id] = result.action
            else:
                missed[result.agent_id] = _missed(result)

        for agent_id in active:
            reused = self.reuse.get((tick, agent_id))
            if reused is not None:
                settle(reused)
        pending: Iterator[AgentId] = iter([a for a in active if (tick, a) not in self.reuse])

        async def worker() -> None:
            # Workers share one iterator: at most `concurrency` turns in flight, no task per agent.
            for agent_id in pending:
                settle(await runner.take(tick, agent_id))

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.concurrency, len(active))):
                group.create_task(worker())

        # Arrival order must not matter: the world sees actions in agent order and resolves
        # conflicts with its own seeded stream.
        ordered = dict(sorted(actions.items()))
        rng = runner.seeds.rng("conflicts", tick)
        outcomes = runner.world.apply(tick, ordered, rng, dict(sorted(missed.items())))
        runner.remember(tick, outcomes)
        _close_tick(runner, tick, tally, self.clock() - started, self.on_tick)


@dataclass
class FreeRunningScheduler:
    runner: TurnRunner
    concurrency: int
    on_tick: TickHook | None = None
    clock: Callable[[], float] = time.perf_counter
    should_stop: StopCheck | None = None
    reuse: Mapping[tuple[int, AgentId], TurnResult] = field(default_factory=dict)
    name: str = "free-running"
    _active: dict[int, frozenset[AgentId]] = field(default_factory=dict)

    def _is_active(self, tick: int, agent_id: AgentId) -> bool:
        if tick not in self._active:
            rng = self.runner.seeds.rng("activation", tick)
            self._active[tick] = frozenset(self.runner.world.active_agents(tick, rng))
        return agent_id in self._active[tick]

    async def run(self, first_tick: int, ticks: int) -> None:
        runner = self.runner
        agent_ids: Sequence[AgentId] = runner.world.agent_ids()
        slots = asyncio.Semaphore(self.concurrency)
        finished: dict[int, int] = defaultdict(int)
        tallies: dict[int, TickTally] = defaultdict(TickTally)
        started = self.clock()
        next_to_close = first_tick

        def finish(tick: int) -> None:
            nonlocal next_to_close, started
            finished[tick] += 1
            while next_to_close < ticks and finished[next_to_close] == len(agent_ids):
                now = self.clock()
                # A tick where nobody was active has no tally: it still gets its tick record.
                tally = tallies.pop(next_to_close, TickTally())
                _close_tick(runner, next_to_close, tally, now - started, self.on_tick)
                started = now
                del finished[next_to_close]
                next_to_close += 1

        stopped: list[str] = []

        async def agent_loop(agent_id: AgentId) -> None:
            for tick in range(first_tick, ticks):
                reason = self.should_stop() if self.should_stop is not None else None
                if reason is not None:
                    stopped.append(reason)
                    return  # turns under way finish; no new one starts
                if self._is_active(tick, agent_id):
                    reused = self.reuse.get((tick, agent_id))
                    if reused is not None:
                        result = reused
                    else:
                        async with slots:
                            result = await runner.take(tick, agent_id)
                    tallies[tick].add(result.status)
                    actions: dict[AgentId, Any] = {}
                    missed: dict[AgentId, Missed] = {}
                    if result.action is not None:
                        actions[agent_id] = result.action
                    else:
                        missed[agent_id] = _missed(result)
                    rng = runner.seeds.rng("conflicts", tick, agent_id)
                    runner.remember(tick, runner.world.apply(tick, actions, rng, missed))
                finish(tick)

        async with asyncio.TaskGroup() as group:
            for agent_id in agent_ids:
                group.create_task(agent_loop(agent_id))
        if stopped and next_to_close < ticks:
            raise RunStoppedError(stopped[0])
