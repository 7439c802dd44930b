"""Pick up a run that stopped (kill -9, a lost node, Ctrl-C, a budget, a dead server) and take it
to its end.

The state at the last closed tick is rebuilt by replay, which also checks every digest. Turns of
later ticks that the log already holds were paid for: they are applied again, never asked again,
so the final log has each decision once; the records they made (of any kind the world or a policy
declares) that the log already holds are made again and not logged again, so it has each of those
once too. A torn last line (a crash mid-write) is cut off first; it is the only byte ever removed
from a log.

A decision that ended in an error (the provider never answered) is not a turn taken: the agent
did not act. Those of ticks not yet closed are asked again on any resume; with
``retry_errors`` every errored decision is, closed ticks included. Asking one again changes what
followed it, so what depended on it is asked again too, and nothing else:

- in a world whose agents share state (lockstep), every decision of a tick saw the state at the
  tick's start. The run goes back to the first tick with an errored decision: that tick's other
  decisions are reused (they saw the same state), its errored ones are asked again, and the
  later ticks are run again, since their states followed from it;
- in an ``independent`` world an agent's turns depend only on its own earlier ones: each agent
  with an errored decision is asked again from that tick on, and every other turn is reused.

The log is only appended to: a ``resume`` record with ``rollback`` set supersedes every record
logged before it for a tick at or after its tick, and the reused decisions are logged again
right after it (``replay.read_run`` and ``frames.load_run`` give the effective log). A crash at
any point leaves a log that resumes the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from agora.engine.config import ConfigError
from agora.engine.log import LogBusyError, check_not_busy
from agora.engine.record_kinds import LoggedRecords
from agora.engine.records import AgentId, Decision, LogRecord
from agora.engine.replay import LoggedRun, Replayer, read_run, spend_of
from agora.engine.runner import Resumption, RunPlan, plan_resumed
from agora.engine.turns import RunTotals, TurnResult, TurnStatus, TurnUsage


class ResumeError(ValueError):
    pass


def prepare_resume(run_dir: Path, *, retry_errors: bool = False) -> tuple[RunPlan, Resumption]:
    logged = read_run(run_dir)
    errored = [
        (tick, decision.agent)
        for tick, decisions in logged.decisions.items()
        for decision in decisions
        if decision.error is not None
    ]
    reask = set(errored if retry_errors else (k for k in errored if k[0] > logged.last_tick))
    completed = logged.end is not None and logged.end.status == "completed" and not logged.torn
    if completed and not reask:
        if errored:
            raise ResumeError(
                f"{logged.path}: the run already completed, with {len(errored)} decisions that "
                "ended in an error; ask them again with `agora resume "
                f"{logged.path.parent} --retry-errors`"
            )
        nothing = " and no decision ended in an error" if retry_errors else ""
        raise ResumeError(f"{logged.path}: the run already completed{nothing}; nothing to resume")
    try:
        check_not_busy(logged.path)
    except LogBusyError as exc:
        raise ResumeError(str(exc)) from None

    replayer = Replayer(logged)
    first, kept = _what_to_keep(logged, reask, replayer.world.independent)
    rollback = bool(reask)
    replayer.advance_to(first - 1)
    try:
        plan = plan_resumed(logged.header.config, logged.path.parent, logged.header.run_id)
    except ConfigError as exc:
        raise ResumeError(f"{logged.path}:1: {exc}") from None
    # Only now, with the state rebuilt and every digest checked, is the log touched.
    dropped = _cut_torn_line(logged.path) if logged.torn else False

    action_type = replayer.world_plugin.action_type
    # The world's and the policies' records the log holds for ticks it did not close: the
    # resumed run makes them again (re-absorbing the reused turns here, closing the ticks
    # later) and each is logged once. After a rollback those logged for the ticks it goes back
    # to are superseded: all are owed again.
    already = (
        LoggedRecords()
        if rollback
        else LoggedRecords(
            record
            for by_tick in logged.records.values()
            for tick, records in by_tick.items()
            if tick > logged.last_tick
            for record in records
        )
    )
    reuse: dict[tuple[int, int], TurnResult] = {}
    owed: list[LogRecord] = []
    for decision in kept:
        tick = decision.tick
        action = msgspec.convert(decision.action, action_type) if decision.valid else None
        reuse[(tick, decision.agent)] = TurnResult(decision.agent, action, _status(decision))
        if rollback:  # logged again, after the rollback record; the writer checks it anew
            owed.append(msgspec.structs.replace(decision, check=""))
        for policy in replayer.policies:
            # Seen by every turn, valid or not, as in the run and in replay.
            view = policy.view(decision.agent, tick)
            if decision.valid:
                records, _ = policy.absorb(tick, decision.agent, decision.fields, view)
                owed.extend(r for r in records if not already.take(r))
    before = (ds for tick, ds in logged.decisions.items() if tick < first)
    kept_ids = {id(decision) for decision in kept}
    return plan, Resumption(
        seeds=replayer.seeds,
        parts=replayer.parts,
        policies=replayer.policies,
        agents=replayer.agents,
        first_tick=first,
        totals=_with_spent(
            _totals([*before, kept]),
            logged.superseded_spend,
            # Decisions this resume supersedes (asked again, or after the tick it goes back to).
            spend_of(
                d
                for tick, ds in logged.decisions.items()
                if tick >= first
                for d in ds
                if id(d) not in kept_ids
            ),
        ),
        reuse=reuse,
        records=owed,
        dropped_torn_line=dropped,
        last_tick=logged.ticks[first - 1][1] if first - 1 in logged.ticks else None,
        endpoints=logged.header.endpoints,
        logged=already,
        kinds=logged.kinds,
        reasked=len(reask),
        rollback=rollback,
    )


def _what_to_keep(
    logged: LoggedRun, reask: set[tuple[int, AgentId]], independent: bool
) -> tuple[int, list[Decision]]:
    """The tick the run goes on from, and the logged decisions from it on that are reused."""
    if not reask:
        first = logged.last_tick + 1
        return first, _from(logged, first, lambda d: True)
    if independent:
        # Each agent from its first errored turn on; every other agent's turns stand.
        again: dict[AgentId, int] = {}
        for tick, agent in reask:
            again[agent] = min(tick, again.get(agent, tick))
        # Never past the first tick not closed: an agent that ran ahead may have erred only
        # in a later tick, and the ticks between must still be run (and closed) again.
        first = min(min(again.values()), logged.last_tick + 1)
        return first, _from(logged, first, lambda d: d.tick < again.get(d.agent, d.tick + 1))
    # The first tick with an errored decision: its other decisions saw the same state.
    first = min(tick for tick, _ in reask)
    return first, [d for d in logged.decisions.get(first, []) if (first, d.agent) not in reask]


def _from(logged: LoggedRun, first: int, keep: Callable[[Decision], bool]) -> list[Decision]:
    return [
        decision
        for tick in sorted(t for t in logged.decisions if t >= first)
        for decision in logged.decisions[tick]
        if keep(decision)
    ]


def _status(decision: Decision) -> TurnStatus:
    if decision.error is not None:
        return "error"
    return "valid" if decision.valid else "invalid"


def _with_spent(totals: RunTotals, *spent: tuple[int, int, float]) -> RunTotals:
    """Superseded decisions were paid for: their requests, tokens and cost still count (the
    budget and the summary say what a run cost, not what its surviving decisions did)."""
    for requests, billed, cost in spent:
        totals.requests += requests
        totals.billed_tokens += billed
        totals.cost_usd += cost
    return totals


def _totals(by_tick: Iterable[list[Decision]]) -> RunTotals:
    """The run's totals so far, from its decisions (retries are not logged apart from requests)."""
    totals = RunTotals()
    for decisions in by_tick:
        for decision in decisions:
            billed = _billed(decision)
            totals.count(decision, TurnUsage(answers=decision.attempts, billed_tokens=billed))
    return totals


def _billed(decision: Decision) -> int:
    """The tokens a provider billed for a decision: a multi-ask turn's uncached calls."""
    if decision.calls:
        return sum(c.tokens_in + c.tokens_out for c in decision.calls if not c.cached)
    return 0 if decision.cached else decision.tokens_in + decision.tokens_out


def _cut_torn_line(path: Path) -> bool:
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return False
    with open(path, "r+b") as file:
        file.truncate(keep)
        file.flush()
        os.fsync(file.fileno())
    return True
