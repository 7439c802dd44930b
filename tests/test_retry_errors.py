"""Errored decisions asked again: ``agora resume --retry-errors``, and the unfinished tick's
errored decisions on any resume. The log is append-only; ``read_run`` and ``load_run`` give the
effective records, and replay checks every digest of the result."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

import agora.engine.runner as runner_module
from agora.engine.frames import load_run
from agora.engine.inference.errors import InferenceError
from agora.engine.records import Completion, Decision, Request
from agora.engine.replay import Replayer, read_run
from agora.engine.resume import ResumeError, prepare_resume
from agora.engine.runner import execute, plan_run
from tests.helpers import CONFIG, of_kind, records, run_cli

SMALL = {"run.ticks": 5, "world.agents": 45, "world.cells_per_district": 10}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _logging_left_alone(monkeypatch):
    """``cli.main`` in this process must not point structlog at pytest's captured stderr: its
    loggers cache what they were given, and later tests would write to a closed stream."""
    import agora.engine.cli

    monkeypatch.setattr(agora.engine.cli, "_configure_logging", lambda quiet: None)


class Failing:
    """The run's own client, with the requests of some (tick, agent) failing like a dead server.
    ``asked`` counts the requests of each (tick, agent) that reached it."""

    def __init__(self, inner: Any, fails: Any) -> None:
        self.inner = inner
        self.fails = fails
        self.asked: Counter[tuple[int, int]] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, request: Request) -> Completion:
        self.asked[(request.tick, request.agent_id)] += 1
        if self.fails(request.tick, request.agent_id):
            raise InferenceError(
                "HTTP 500: internal server error (after 6 attempts)", retryable=False
            )
        return await self.inner.complete(request)


_BUILD_CLIENT = runner_module.build_client


def clients(monkeypatch, fails: Any = lambda tick, agent: False) -> list[Failing]:
    """Every run built from now on asks through a ``Failing``; the list collects them."""
    made: list[Failing] = []
    real = _BUILD_CLIENT

    def build(*args: Any, **kwargs: Any) -> Failing:
        client = Failing(real(*args, **kwargs), fails)
        made.append(client)
        return client

    monkeypatch.setattr(runner_module, "build_client", build)
    return made


def run(tmp_path: Path, name: str, config: Path = CONFIG, **overrides: Any):
    plan = plan_run(config, {**overrides, "run.out": str(tmp_path / name)}, now=NOW)
    return plan, asyncio.run(execute(plan))


def resume(run_dir: Path, **kwargs: Any):
    plan, resumption = prepare_resume(run_dir, **kwargs)
    return resumption, asyncio.run(execute(plan, resume=resumption))


def effective(run_dir: Path) -> list[tuple[int, int, str, bool]]:
    logged = read_run(run_dir)
    decisions = [d for ds in logged.decisions.values() for d in ds]
    keys = [(d.tick, d.agent) for d in decisions]
    assert len(keys) == len(set(keys)), "each (tick, agent) once"
    return sorted((d.tick, d.agent, d.raw, d.valid) for d in decisions)


def digests(run_dir: Path) -> list[str]:
    logged = read_run(run_dir)
    return [logged.ticks[t][1].digest for t in sorted(logged.ticks)]


def replays(run_dir: Path) -> None:
    logged = read_run(run_dir)
    Replayer(logged).advance_to(logged.last_tick)


def test_a_lockstep_run_goes_back_to_its_first_errored_tick(tmp_path, monkeypatch):
    _, clean = run(tmp_path, "clean", **SMALL)
    broken = {(2, 4), (2, 30), (3, 7)}
    made = clients(monkeypatch, lambda tick, agent: (tick, agent) in broken)
    _, summary = run(tmp_path, "run", **SMALL, **{"run.max_error_rate": 0.5})
    assert summary.status == "completed" and summary.errors == 3
    with pytest.raises(ResumeError, match=r"3 decisions that ended in an error.*--retry-errors"):
        prepare_resume(tmp_path / "run")

    assert sum(made[0].asked.values()) == 225

    made = clients(monkeypatch)  # the server is back
    resumption, summary = resume(tmp_path / "run", retry_errors=True)
    assert resumption.first_tick == 2 and resumption.reasked == 3 and resumption.rollback
    # Tick 2's other decisions saw the same state: reused, not asked again.
    assert set(resumption.reuse) == {(2, a) for a in range(45)} - {(2, 4), (2, 30)}
    assert summary.status == "completed" and summary.errors == 0
    assert summary.decisions == clean.decisions == 225

    # Exactly the errored decisions of tick 2, then ticks 3 and 4 as they follow from it.
    asked = made[0].asked
    assert set(asked) == {(2, 4), (2, 30)} | {(t, a) for t in (3, 4) for a in range(45)}
    assert max(asked.values()) == 1, "none asked twice"

    # The same history as a run that never failed: the answers are seeded per (agent, tick).
    assert effective(tmp_path / "run") == effective(tmp_path / "clean")
    assert digests(tmp_path / "run") == digests(tmp_path / "clean")
    replays(tmp_path / "run")
    log = records(tmp_path / "run" / "log.jsonl")
    assert len(of_kind(log, "decision")) > 225, "the superseded records stay in the log"
    [resumed] = of_kind(log, "resume")
    assert resumed["rollback"] and resumed["tick"] == 2 and resumed["reasked"] == 3
    frames = load_run(tmp_path / "run")
    assert frames.decisions.height == 225
    assert frames.decisions.select("tick", "agent").is_duplicated().sum() == 0
    assert frames.decisions.get_column("error").is_null().all()
    assert frames.ticks.get_column("tick").to_list() == [0, 1, 2, 3, 4]
    assert frames.end is not None and frames.end["status"] == "completed"
    assert frames.end["errors"] == 0

    with pytest.raises(ResumeError, match="no decision ended in an error; nothing to resume"):
        prepare_resume(tmp_path / "run", retry_errors=True)
    result = run_cli("replay", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "every decision's check and state digest matches" in result.stdout


def counter_config(tmp_path: Path) -> Path:
    path = tmp_path / "counter.toml"
    path.write_text(
        '[run]\nmax_error_rate = 1.0\n[world]\nkind = "tests.independent_world:PLUGIN"\nagents = 4\n'
    )
    return path


def test_an_independent_world_asks_again_only_the_agents_that_failed(tmp_path, monkeypatch):
    config = counter_config(tmp_path)
    run(tmp_path, "clean", config, **{"run.ticks": 6})
    broken = {(1, 2), (3, 0), (4, 0)}
    clients(monkeypatch, lambda tick, agent: (tick, agent) in broken)
    _, summary = run(tmp_path, "run", config, **{"run.ticks": 6})
    assert summary.errors == 3 and read_run(tmp_path / "run").header.scheduler == "free-running"

    made = clients(monkeypatch)
    resumption, summary = resume(tmp_path / "run", retry_errors=True)
    # Agent 2 from tick 1 on, agent 0 from tick 3 on (its later turns depend on its own
    # earlier ones); agents 1 and 3 are never asked again.
    again = {(t, 2) for t in range(1, 6)} | {(t, 0) for t in range(3, 6)}
    assert resumption.first_tick == 1
    assert set(made[0].asked) == again and max(made[0].asked.values()) == 1
    assert set(resumption.reuse) == {(t, a) for t in range(1, 6) for a in range(4)} - again
    assert summary.status == "completed" and summary.errors == 0 and summary.decisions == 24
    assert effective(tmp_path / "run") == effective(tmp_path / "clean")
    assert digests(tmp_path / "run") == digests(tmp_path / "clean")
    replays(tmp_path / "run")
    assert load_run(tmp_path / "run").decisions.height == 24


def test_errored_decisions_of_an_unfinished_tick_are_asked_again_on_any_resume(
    tmp_path, monkeypatch
):
    run(tmp_path, "clean", **SMALL)
    clients(monkeypatch, lambda tick, agent: tick == 2 and agent % 3 == 0)
    run(tmp_path, "run", **SMALL, **{"run.max_error_rate": 1.0})
    # Cut the log before tick 2's posts and tick record, as a crash could.
    log = tmp_path / "run" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":2,'))
    while lines[cut - 1].startswith(b'{"kind":"post"'):
        cut -= 1
    log.write_bytes(b"".join(lines[:cut]))
    assert read_run(tmp_path / "run").last_tick == 1

    made = clients(monkeypatch)
    resumption, summary = resume(tmp_path / "run")  # a plain resume
    assert resumption.first_tick == 2 and resumption.reasked == 15
    assert set(made[0].asked) >= {(2, a) for a in range(0, 45, 3)}
    assert not {(2, a) for a in range(45) if a % 3} & set(made[0].asked), "the others reused"
    assert summary.errors == 0
    assert effective(tmp_path / "run") == effective(tmp_path / "clean")
    assert digests(tmp_path / "run") == digests(tmp_path / "clean")


def test_a_retry_killed_midway_resumes_to_the_same_end(tmp_path, monkeypatch):
    """The rollback record stays in force: a second crash after it loses nothing."""
    run(tmp_path, "clean", **SMALL)
    clients(monkeypatch, lambda tick, agent: tick == 1 and agent < 5)
    run(tmp_path, "run", **SMALL, **{"run.max_error_rate": 1.0})
    clients(monkeypatch)
    plan, resumption = prepare_resume(tmp_path / "run", retry_errors=True)
    asyncio.run(execute(plan, resume=resumption))
    # Cut the retried log back to a point after the rollback and inside tick 3.
    log = tmp_path / "run" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    marker = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"resume"'))
    cut = next(
        i
        for i, line in enumerate(lines)
        if i > marker and line.startswith(b'{"kind":"decision","tick":3,')
    )
    log.write_bytes(b"".join(lines[: cut + 10]))
    resumption, summary = resume(tmp_path / "run")
    assert resumption.first_tick == 3 and not resumption.rollback
    assert summary.status == "completed" and summary.errors == 0
    assert effective(tmp_path / "run") == effective(tmp_path / "clean")
    assert digests(tmp_path / "run") == digests(tmp_path / "clean")
    assert load_run(tmp_path / "run").decisions.height == 225


def test_a_dead_server_fails_the_run_early_with_the_reason(tmp_path, monkeypatch):
    made = clients(monkeypatch, lambda tick, agent: True)
    _, summary = run(tmp_path, "run", **SMALL)
    assert summary.status == "failed" and summary.ticks == 1, "stopped after tick 0"
    assert summary.reason == (
        "45 of 45 decisions ended in an error (most often 'HTTP 500: internal server error', "
        "45 times), over run.max_error_rate 0.05; stopped after tick 0 of 5, in which every "
        "decision failed"
    )
    assert sum(made[0].asked.values()) == 45
    end = of_kind(records(tmp_path / "run" / "log.jsonl"), "end")[-1]
    assert end["status"] == "failed" and end["reason"] == summary.reason

    made = clients(monkeypatch)
    resumption, summary = resume(tmp_path / "run", retry_errors=True)
    assert resumption.first_tick == 0 and resumption.reasked == 45 and not resumption.reuse
    assert summary.status == "completed" and summary.errors == 0 and summary.decisions == 225
    assert sum(made[0].asked.values()) == 225
    replays(tmp_path / "run")


def test_errors_under_the_threshold_complete_and_over_it_fail(tmp_path, monkeypatch):
    clients(monkeypatch, lambda tick, agent: tick == 4 and agent < 11)  # 11 of 225: 4.9%
    _, summary = run(tmp_path, "under", **SMALL)
    assert summary.status == "completed" and summary.errors == 11
    clients(monkeypatch, lambda tick, agent: tick == 4 and agent < 12)  # 12 of 225: 5.3%
    _, summary = run(tmp_path, "over", **SMALL)
    assert summary.status == "failed" and summary.ticks == 5
    assert summary.reason is not None and summary.reason.startswith("12 of 225 decisions")
    assert "stopped after" not in summary.reason


def test_the_cli_says_a_run_failed_in_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    from agora.engine.cli import main

    clients(monkeypatch, lambda tick, agent: True)
    out = tmp_path / "run"
    args = ["run", str(CONFIG), "-q", "--ticks", "3", "--agents", "45"]
    code = main([*args, "--set", "world.cells_per_district=10", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    [line] = captured.err.strip().splitlines()
    assert line.startswith("agora: run run failed: 45 of 45 decisions ended in an error")
    assert "'HTTP 500: internal server error'" in line
    assert line.endswith(f"then `agora resume {out} --retry-errors`")

    clients(monkeypatch, lambda tick, agent: tick == 1 and agent == 3)
    out = tmp_path / "some"
    code = main([*args, "--set", "world.cells_per_district=10", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.strip() == (
        "agora: 1 of 135 decisions ended in an error (those agents did not act); ask them "
        f"again: `agora resume {out} --retry-errors`"
    )
    clients(monkeypatch)
    assert main(["resume", str(out), "-q", "--retry-errors"]) == 0
    captured = capsys.readouterr()
    assert "1 errored decisions asked again" in captured.err
    assert read_run(out).end is not None and read_run(out).end.errors == 0  # type: ignore[union-attr]


def test_a_sweep_rerun_asks_again_what_failed(tmp_path, monkeypatch):
    import agora.engine.sweep as sweep_module
    from agora.engine.run_state import state_of
    from agora.engine.sweep import plan_sweep, run_sweep
    from tests.test_sweep import small_sweep

    plan = plan_sweep(small_sweep(tmp_path), {"run.ticks": 2}, out=str(tmp_path / "out"))
    # One run at a time, so the client knows which run asks.
    plan = dataclasses.replace(plan, section=msgspec.structs.replace(plan.section, parallel=1))
    dead, some = plan.runs[0].plan.out_dir, plan.runs[1].plan.out_dir
    current: list[Path] = []
    real_execute = sweep_module.execute

    async def tracked(run_plan: Any, **kwargs: Any) -> Any:
        current[:] = [run_plan.out_dir]
        return await real_execute(run_plan, **kwargs)

    monkeypatch.setattr(sweep_module, "execute", tracked)
    clients(
        monkeypatch, lambda tick, agent: current == [dead] or (current == [some] and agent == 1)
    )
    manifest = asyncio.run(run_sweep(plan))
    status = {r.dir: r for r in manifest.runs}
    name = {run_dir: str(run_dir.relative_to(plan.out_dir)) for run_dir in (dead, some)}
    assert state_of(dead).state == "failed" and status[name[dead]].status == "failed"
    assert state_of(some).state == "errors" and status[name[some]].status == "errors"
    assert status[name[some]].detail == "2 of 90 decisions failed"

    clients(monkeypatch)  # the server is back
    manifest = asyncio.run(run_sweep(plan))
    status = {r.dir: r for r in manifest.runs}
    assert status[name[dead]].status == "resumed"
    assert status[name[dead]].detail == "45 errored decisions asked again"
    assert status[name[some]].status == "resumed"
    assert status[name[some]].detail == "2 errored decisions asked again"
    assert {r.status for r in manifest.runs} == {"resumed", "skipped"}
    for run_dir in (dead, some):
        assert state_of(run_dir).state == "completed"
        replays(run_dir)


def test_the_decision_check_is_the_records_last_field():
    # The log writer fills the check in at the end of the encoded line.
    assert Decision.__struct_fields__[-1] == "check"


def test_what_a_rollback_supersedes_still_counts_in_the_totals(tmp_path, monkeypatch):
    """Superseded decisions were paid for: requests and tokens are the whole run's."""
    broken = {(2, 4)}
    clients(monkeypatch, lambda tick, agent: (tick, agent) in broken)
    _, first = run(tmp_path, "run", **SMALL, **{"run.max_error_rate": 0.5})
    made = clients(monkeypatch)
    _, summary = resume(tmp_path / "run", retry_errors=True)
    asked_again = sum(made[0].asked.values())
    # Every request either session made is in the totals: the first run's (errors included,
    # later ticks since superseded) and the retry's.
    assert summary.requests == first.requests + asked_again
    assert summary.billed_tokens > first.billed_tokens
