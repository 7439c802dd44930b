"""Pick up a run that stopped (kill -9, a lost node, Ctrl-C, a budget) and take it to its end.

The state at the last closed tick is rebuilt by replay, which also checks every digest. Turns of
later ticks that the log already holds were paid for: they are applied again, never asked again,
so the final log has each decision once. A torn last line (a crash mid-write) is cut off first;
it is the only byte ever removed from a log.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from engine.config import ConfigError
from engine.log import LogBusyError, check_not_busy
from engine.records import Decision, Like, LogRecord
from engine.replay import Replayer, read_run
from engine.runner import Resumption, RunPlan, plan_resumed
from engine.turns import RunTotals, TurnResult, TurnUsage


class ResumeError(ValueError):
    pass


def prepare_resume(run_dir: Path) -> tuple[RunPlan, Resumption]:
    logged = read_run(run_dir)
    if logged.end is not None and logged.end.status == "completed" and not logged.torn:
        raise ResumeError(f"{logged.path}: the run already completed; nothing to resume")
    try:
        check_not_busy(logged.path)
    except LogBusyError as exc:
        raise ResumeError(str(exc)) from None

    replayer = Replayer(logged)
    replayer.advance_to(logged.last_tick)
    try:
        plan = plan_resumed(logged.header.config, logged.path.parent, logged.header.run_id)
    except ConfigError as exc:
        raise ResumeError(f"{logged.path}:1: {exc}") from None
    # Only now, with the state rebuilt and every digest checked, is the log touched.
    dropped = _cut_torn_line(logged.path) if logged.torn else False

    action_type = replayer.world_plugin.action_type
    logged_likes = {
        (like.tick, like.agent, like.post_id) for likes in logged.likes.values() for like in likes
    }
    reuse: dict[tuple[int, int], TurnResult] = {}
    owed: list[LogRecord] = []
    for tick in sorted(t for t in logged.decisions if t > logged.last_tick):
        for decision in logged.decisions[tick]:
            action = msgspec.convert(decision.action, action_type) if decision.valid else None
            reuse[(tick, decision.agent)] = TurnResult(decision.agent, action, _status(decision))
            if not decision.valid:
                continue
            for policy in replayer.policies:
                view = policy.view(decision.agent, tick)
                records, _ = policy.absorb(tick, decision.agent, decision.fields, view)
                owed.extend(
                    r
                    for r in records
                    if not (isinstance(r, Like) and (r.tick, r.agent, r.post_id) in logged_likes)
                )
    return plan, Resumption(
        seeds=replayer.seeds,
        parts=replayer.parts,
        policies=replayer.policies,
        agents=replayer.agents,
        first_tick=replayer.tick + 1,
        totals=_totals(logged.decisions.values()),
        reuse=reuse,
        records=owed,
        dropped_torn_line=dropped,
        last_tick=logged.ticks[logged.last_tick][1] if logged.last_tick >= 0 else None,
        posts_logged=frozenset(
            (post.tick, post.post_id)
            for tick, posts in logged.posts.items()
            if tick > logged.last_tick
            for post in posts
        ),
    )


def _status(decision: Decision) -> str:
    if decision.error is not None:
        return "error"
    return "valid" if decision.valid else "invalid"


def _totals(by_tick: Iterable[list[Decision]]) -> RunTotals:
    """The run's totals so far, from its decisions (retries are not logged apart from requests)."""
    totals = RunTotals()
    for decisions in by_tick:
        for decision in decisions:
            billed = 0 if decision.cached else decision.tokens_in + decision.tokens_out
            totals.count(decision, TurnUsage(answers=decision.attempts, billed_tokens=billed))
    return totals


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
