"""Turns and schedulers, driven through the real runner with scripted clients."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agora.engine.inference.errors import InferenceError
from agora.engine.inference.offline import OfflineClient
from agora.engine.records import Completion, Request
from agora.engine.runner import execute, plan_run
from tests.helpers import CONFIG, of_kind, records, without_timing

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class ScriptedClient:
    """Answers like the offline backend unless ``script`` returns a text or an exception."""

    backend = "scripted"
    model = "scripted"

    def __init__(
        self,
        inner: OfflineClient,
        script: Callable[[Request], object] | None = None,
        delay: Callable[[Request], float] | None = None,
    ) -> None:
        self.inner = inner
        self.script = script
        self.delay = delay
        self.calls: list[Request] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def complete(self, request: Request) -> Completion:
        self.calls.append(request)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay is not None:
                await asyncio.sleep(self.delay(request))
            scripted = self.script(request) if self.script else None
            if isinstance(scripted, BaseException):
                raise scripted
            if isinstance(scripted, str):
                return Completion(scripted, 10, 5, 0.0, "scripted")
            return await self.inner.complete(request)
        finally:
            self.in_flight -= 1

    async def prepare(self, known):
        return {}

    def reports(self):
        return []

    async def aclose(self) -> None:
        return None


def _plan(tmp_path: Path, name: str = "run", config: Path = CONFIG, **overrides):
    settings = {
        "run.out": str(tmp_path / name),
        "run.ticks": 2,
        "world.agents": 45,
        "world.districts": 9,
        "world.cells_per_district": 10,
    }
    settings.update(overrides)
    return plan_run(config, settings, now=NOW)


def _offline_for(plan) -> OfflineClient:
    from agora.engine.seeding import Seeds

    parts = plan.world_plugin.build(plan.world_config, Seeds(plan.config.run.seed))
    return OfflineClient(parts.offline, [], plan.config.inference.offline)


def _run(plan, client):
    summary = asyncio.run(execute(plan, client=client))
    return summary, records(plan.out_dir / "log.jsonl")


def test_an_invalid_answer_is_recorded_and_re_asked(tmp_path):
    plan = _plan(tmp_path, **{"policies.board.enabled": False})
    script = lambda r: "I'd rather not say." if (r.agent_id == 3 and r.attempt == 0) else None
    client = ScriptedClient(_offline_for(plan), script)
    summary, log = _run(plan, client)
    decision = next(d for d in of_kind(log, "decision") if d["agent"] == 3 and d["tick"] == 0)
    assert decision["valid"] is True
    assert decision["attempts"] == 2 and decision["requests"] == 2
    assert decision["invalid_attempts"] == [
        {"raw": "I'd rather not say.", "reason": "no JSON object in the answer"}
    ]
    reask = next(r for r in client.calls if r.agent_id == 3 and r.attempt == 1)
    assert reask.messages[-2].content == "I'd rather not say."
    assert "could not be used: no JSON object" in reask.messages[-1].content
    assert summary.invalid == 0 and summary.decisions == 90


def test_an_answer_invalid_every_time_is_kept_raw_and_the_agent_does_not_act(tmp_path):
    plan = _plan(
        tmp_path, **{"policies.board.enabled": False, "inference.max_reasks": 2, "run.ticks": 1}
    )
    bad = '{"reasoning": "go", "action": "move", "district": 99}'
    client = ScriptedClient(_offline_for(plan), lambda r: bad if r.agent_id == 7 else None)
    summary, log = _run(plan, client)
    decision = next(d for d in of_kind(log, "decision") if d["agent"] == 7)
    assert decision["valid"] is False and decision["action"] is None
    assert decision["raw"] == bad
    assert decision["invalid_reason"] == "district 99 does not exist (districts are 1 to 9)"
    assert len(decision["invalid_attempts"]) == 2 and decision["requests"] == 3
    assert summary.invalid == 1
    tick = of_kind(log, "tick")[0]
    assert tick["invalid"] == 1 and tick["metrics"]["acted"] == 44


def test_provider_failures_and_bugs_are_recorded_and_the_tick_goes_on(tmp_path):
    plan = _plan(tmp_path, **{"run.ticks": 1})

    def script(request: Request):
        if request.agent_id == 5:
            return InferenceError("HTTP 503 after 4 attempts", retryable=True, requests=4)
        if request.agent_id == 6:
            return RuntimeError("boom")
        return None

    summary, log = _run(plan, ScriptedClient(_offline_for(plan), script))
    decisions = {d["agent"]: d for d in of_kind(log, "decision")}
    assert len(decisions) == 45
    assert decisions[5]["error"] == "HTTP 503 after 4 attempts" and decisions[5]["requests"] == 4
    assert decisions[6]["error"] == "internal error: RuntimeError: boom"
    assert summary.errors == 2 and summary.status == "completed"
    assert of_kind(log, "tick")[0]["errors"] == 2


def test_the_order_answers_arrive_in_does_not_change_the_outcome(tmp_path):
    outcomes = []
    for run, seed in enumerate([None, 1, 2]):
        plan = _plan(tmp_path, f"run{run}", **{"run.ticks": 3})
        delays = random.Random(seed)
        delay = None if seed is None else (lambda r, d=delays: d.random() * 0.002)
        from agora.engine.seeding import Seeds

        parts = plan.world_plugin.build(plan.world_config, Seeds(plan.config.run.seed))
        policies = [p.plugin.build(p.config, Seeds(0), p.name) for p in plan.policies]
        # The client's own board copy only reads views, so answers match the offline run.
        client = ScriptedClient(
            OfflineClient(parts.offline, policies, plan.config.inference.offline), delay=delay
        )
        _, log = _run(plan, client)
        decisions = sorted(
            (without_timing(d) for d in of_kind(log, "decision")),
            key=lambda d: (d["tick"], d["agent"]),
        )
        ticks = [without_timing(t) for t in of_kind(log, "tick")]
        outcomes.append((decisions, ticks, of_kind(log, "post")))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_the_concurrency_cap_holds(tmp_path):
    plan = _plan(tmp_path, **{"run.ticks": 1, "inference.concurrency": 4})
    client = ScriptedClient(_offline_for(plan), delay=lambda r: 0.001)
    _run(plan, client)
    assert client.most_in_flight == 4


def _counter_plan(tmp_path: Path, name: str, ticks: int, text: str = ""):
    path = tmp_path / f"{name}.toml"
    path.write_text('[world]\nkind = "tests.independent_world:PLUGIN"\nagents = 4\n' + text)
    return plan_run(path, {"run.out": str(tmp_path / name), "run.ticks": ticks}, now=NOW)


def test_a_tick_where_nobody_acts_still_gets_its_record(tmp_path):
    plan = _counter_plan(tmp_path, "idle", ticks=3, text="idle_ticks = [1]\n")
    summary, log = _run(plan, _offline_for(plan))
    ticks = of_kind(log, "tick")
    assert [(t["tick"], t["decisions"]) for t in ticks] == [(0, 4), (1, 0), (2, 4)]
    assert summary.decisions == 8 and summary.status == "completed"


def test_shared_policies_are_refused_for_an_independent_world(tmp_path):
    from agora.engine.config import ConfigError

    plan = _counter_plan(
        tmp_path, "board", ticks=2, text='[policies.board]\nkind = "message_board"\n'
    )
    with pytest.raises(ConfigError, match=r"^policies\.board: .* runs its agents independently"):
        asyncio.run(execute(plan))
    assert not plan.out_dir.exists()


def test_an_independent_world_has_no_tick_barrier(tmp_path):
    """Agent 0's first answer waits until every other agent has finished all its turns."""
    plan = _counter_plan(tmp_path, "free", ticks=3)
    others_done = asyncio.Event()
    answered: dict[int, int] = {}

    class Gate(ScriptedClient):
        async def complete(self, request: Request) -> Completion:
            if request.agent_id == 0 and request.tick == 0:
                await others_done.wait()
            result = await super().complete(request)
            answered[request.agent_id] = answered.get(request.agent_id, 0) + 1
            if all(answered.get(a, 0) == 3 for a in (1, 2, 3)):
                others_done.set()
            return result

    summary, log = asyncio.run(asyncio.wait_for(_run_async(plan, Gate(_offline_for(plan))), 10))
    assert log[0]["scheduler"] == "free-running"
    decisions = of_kind(log, "decision")
    assert decisions[0]["agent"] != 0  # others ran ahead
    assert [d["agent"] for d in decisions[:9]].count(0) == 0
    ticks = of_kind(log, "tick")
    assert [t["tick"] for t in ticks] == [0, 1, 2]
    assert all(t["decisions"] == 4 for t in ticks)
    # A tick record comes only after all of that tick's decisions.
    positions = {id(r): i for i, r in enumerate(log)}
    for tick in ticks:
        last = max(positions[id(d)] for d in decisions if d["tick"] == tick["tick"])
        assert positions[id(tick)] > last
    assert summary.decisions == 12


def test_lockstep_would_wait_at_the_barrier(tmp_path):
    """The same gate under lockstep never opens: the barrier is real there."""
    plan = _plan(tmp_path, **{"run.ticks": 2})
    release = asyncio.Event()

    class Gate(ScriptedClient):
        async def complete(self, request: Request) -> Completion:
            if request.agent_id == 0 and request.tick == 0:
                await release.wait()
            if request.tick == 1:
                release.set()  # only reachable if tick 1 started before agent 0 answered
            return await super().complete(request)

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(_run_async(plan, Gate(_offline_for(plan))), 0.5))


async def _run_async(plan, client):
    summary = await execute(plan, client=client)
    return summary, records(plan.out_dir / "log.jsonl")


def test_a_budget_stops_an_independent_world_without_starting_new_turns(tmp_path):
    plan = _counter_plan(tmp_path, "budget", ticks=50, text="[inference]\nbudget_tokens = 1000\n")
    summary, log = _run(plan, _offline_for(plan))
    assert summary.status == "stopped" and summary.reason.startswith("token budget reached")
    decisions = of_kind(log, "decision")
    assert len(decisions) < 200
    # Each agent stopped at a turn boundary: its turns are 0..k with no gap.
    for agent in range(4):
        turns = sorted(d["tick"] for d in decisions if d["agent"] == agent)
        assert turns == list(range(len(turns)))
    closed = [t["tick"] for t in of_kind(log, "tick")]
    assert closed == list(range(len(closed)))
    assert all(sum(1 for d in decisions if d["tick"] == t) == 4 for t in closed)
