"""A run that cannot go on says so in one line: a taken output directory, a full disk, an edited
header or decision. No traceback, and the exit code says whose fault it is."""

from __future__ import annotations

import asyncio
import errno
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

import agora.engine.cli as cli
import agora.engine.runner as runner_module
from agora.engine.log import RunLogWriter
from agora.engine.replay import Replayer, ReplayError, read_run
from agora.engine.runner import OutputExistsError, execute, plan_run
from tests.helpers import CONFIG, of_kind, records, run_cli

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = ["--ticks", "3", "--agents", "45", "--set", "world.cells_per_district=10"]
SMALL_SET = {"run.ticks": 3, "world.agents": 45, "world.cells_per_district": 10}


@pytest.fixture(autouse=True)
def _logging_left_alone(monkeypatch):
    """``cli.main`` in this process must not point structlog at pytest's captured stderr: its
    loggers cache what they were given, and later tests would write to a closed stream."""
    import agora.engine.cli

    monkeypatch.setattr(agora.engine.cli, "_configure_logging", lambda quiet: None)


def test_a_run_that_loses_the_race_for_its_out_dir_is_refused_cleanly(
    tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    plan = plan_run(CONFIG, {**SMALL_SET, "run.out": str(out)}, now=NOW)
    # Another run, started the same second into the same --out, gets there first.
    other = plan_run(CONFIG, {**SMALL_SET, "run.out": str(out)}, now=NOW)
    asyncio.run(execute(other))
    before = (out / "log.jsonl").read_bytes()
    with pytest.raises(OutputExistsError, match="already holds a run"):
        asyncio.run(execute(plan))
    assert (out / "log.jsonl").read_bytes() == before, "never overwritten"
    assert [p.name for p in out.iterdir() if p.name.startswith(".log-")] == []

    # Through the CLI: the same one line as when the directory is taken at plan time, exit 2.
    real_plan_run = cli.plan_run
    taken = tmp_path / "taken"

    def plan_then_lose(*args, **kwargs):
        planned = real_plan_run(*args, **kwargs)
        asyncio.run(execute(plan_run(CONFIG, {**SMALL_SET, "run.out": str(taken)}, now=NOW)))
        return planned

    monkeypatch.setattr(cli, "plan_run", plan_then_lose)
    code = cli.main(["run", str(CONFIG), "-q", *SMALL, "--out", str(taken)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == (
        f"agora: config error: run.out: {taken} already holds a run (log.jsonl); runs are never "
        "overwritten: pick another --out, or `agora resume` it\n"
    )


def full_disk_after(monkeypatch, writes: int) -> None:
    """The disk fills up after ``writes`` more writes of the run's log."""
    real = RunLogWriter.append_many
    left = [writes]

    def append_many(self, records):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        left[0] -= 1
        real(self, records)

    monkeypatch.setattr(RunLogWriter, "append_many", append_many)


def test_a_full_disk_names_the_log_and_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    full_disk_after(monkeypatch, 100)
    code = cli.main(["run", str(CONFIG), "-q", *SMALL, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == (
        f"agora: cannot write {out / 'log.jsonl'} (No space left on device); the log up to its "
        f"last whole record is kept: free some space, then `agora resume {out}`\n"
    )
    assert "Traceback" not in captured.out + captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["reason"]

    monkeypatch.undo()  # space freed: the run goes on to its end
    assert cli.main(["resume", str(out), "-q"]) == 0
    capsys.readouterr()
    decisions = of_kind(records(out / "log.jsonl"), "decision")
    assert len({(d["tick"], d["agent"]) for d in decisions}) == len(decisions) == 135
    logged = read_run(out)
    Replayer(logged).advance_to(logged.last_tick)


def test_a_full_disk_at_the_summary_names_the_summary(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def no_space(path, summary):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner_module, "write_summary", no_space)
    code = cli.main(["run", str(CONFIG), "-q", *SMALL, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == (
        f"agora: cannot write {out / 'summary.json'} (No space left on device); the log up to "
        f"its last whole record is kept: free some space, then `agora resume {out}`\n"
    )
    assert records(out / "log.jsonl")[-1]["kind"] == "end", "the log itself is whole"


def test_a_full_disk_before_the_header_says_nothing_ran(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def no_space(self, header):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunLogWriter, "_create", no_space)
    code = cli.main(["run", str(CONFIG), "-q", *SMALL, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == (
        f"agora: cannot write {out / 'log.jsonl'} (No space left on device); nothing was run: "
        "free some space and start it again\n"
    )


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "run"
    asyncio.run(execute(plan_run(CONFIG, {**SMALL_SET, "run.out": str(out)}, now=NOW)))
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    out.mkdir()
    (out / "log.jsonl").write_bytes((run / "log.jsonl").read_bytes())
    return out


def test_an_edited_header_is_refused_by_resume_and_replay(tmp_path, small_run):
    out = copy_of(small_run, tmp_path)
    log = out / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"m":0.5', b'"m":0.6', 1)
    lines = lines[:-10]  # and unfinished, so resume would otherwise go on
    log.write_bytes(b"".join(lines))
    for command in ("replay", "resume"):
        result = run_cli(command, str(out))
        assert result.returncode == 2
        assert result.stderr == (
            f"agora {command}: {log}:1: the run header was edited (its hash does not match); "
            "resume and replay rebuild the run from it: put back the header as the run wrote it\n"
        )


def test_replay_names_the_line_of_an_edited_decision(tmp_path, small_run):
    out = copy_of(small_run, tmp_path)
    log = out / "log.jsonl"
    original = log.read_bytes().splitlines(keepends=True)
    # A decision of tick 1 that moved: make it stay, which changes the tick's state.
    for index, line in enumerate(original):
        if not line.startswith(b'{"kind":"decision","tick":1,') or b'"move_to":null' in line:
            continue
        lines = list(original)
        lines[index] = re.sub(rb'"move_to":\d+', b'"move_to":null', line, count=1)
        log.write_bytes(b"".join(lines))
        try:
            logged = read_run(out)
            Replayer(logged).advance_to(logged.last_tick)
        except ReplayError:
            break  # this one changed the state (a move that was not blocked)
    else:
        pytest.fail("no decision of tick 1 moved anyone")
    agent = msgspec.json.decode(original[index])["agent"]
    tick_line = next(
        i + 1 for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":1,')
    )
    where = f"{log}:{index + 1}: the decision of agent {agent}"
    result = run_cli("replay", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith(f"agora replay: {where} was edited")
    assert result.stderr.count("\n") == 1
    # Stepping to a tick: the digest of tick 1 differs, and the decision's line is named.
    result = run_cli("replay", str(out), "--tick", "2")
    assert result.returncode == 2
    assert result.stderr.startswith(f"agora replay: {where} in tick 1 was edited")
    assert "replays to digest" in result.stderr and f":{tick_line}:" not in result.stderr


def test_an_edit_that_leaves_the_state_alone_is_named_too(tmp_path, small_run):
    out = copy_of(small_run, tmp_path)
    log = out / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"decision"'))
    lines[index] = lines[index].replace(b'"reasoning":"', b'"reasoning":"(edited) ', 1)
    log.write_bytes(b"".join(lines))
    logged = read_run(out)
    Replayer(logged).advance_to(logged.last_tick)  # every digest still matches
    result = run_cli("replay", str(out))
    assert result.returncode == 2
    assert f"{log}:{index + 1}: the decision of agent" in result.stderr


def test_a_log_from_before_the_checks_still_replays_and_resumes(tmp_path, small_run):
    """Format 1: no header hash, no decision checks."""
    out = copy_of(small_run, tmp_path)
    log = out / "log.jsonl"
    old = []
    for number, line in enumerate(log.read_bytes().splitlines()):
        record = msgspec.json.decode(line)
        if number == 0:
            record["format"] = 1
            del record["header_hash"]
        record.pop("check", None)
        old.append(msgspec.json.encode(record) + b"\n")
    log.write_bytes(b"".join(old[:-30]))  # unfinished, too
    result = run_cli("replay", str(out))
    assert result.returncode == 0, result.stderr
    assert "every state digest matches" in result.stdout
    assert run_cli("resume", str(out), "-q").returncode == 0
    logged = read_run(out)
    assert logged.end is not None and logged.end.status == "completed"
    # A header that says format 2 but lost its hash was edited.
    lines = log.read_bytes().splitlines(keepends=True)
    header = msgspec.json.decode(lines[0])
    header["format"] = 2
    lines[0] = msgspec.json.encode(header) + b"\n"
    log.write_bytes(b"".join(lines))
    with pytest.raises(ReplayError, match="the run header was edited"):
        read_run(out)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_a_run_against_a_dead_server_fails_and_is_retried_once_it_is_back(tmp_path):
    from tests.mock_server_fixture import mock_server_process
    from tests.test_http_runs import health

    port = str(free_port())
    out = tmp_path / "run"
    run = [
        *("run", str(CONFIG), "-q", "--backend", "openai-http", "--model", "mock"),
        *("--endpoint", f"http://127.0.0.1:{port}/v1", "--out", str(out), *SMALL),
        *("--set", f'inference.cache_dir="{tmp_path / "cache"}"'),
        *("--set", "inference.max_attempts=2", "--set", "inference.backoff_base_s=0.01"),
    ]
    with mock_server_process("--port", port, "--rate-500", "1.0"):
        result = run_cli(*run)
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "agora: run run failed: 45 of 45 decisions ended in an error (most often 'HTTP 500: "
    )
    assert "internal server error" in line
    assert "45 times), over run.max_error_rate 0.05; stopped after tick 0 of 3" in line
    assert line.endswith(f"`agora resume {out} --retry-errors`")
    assert "Traceback" not in result.stderr
    assert [r["tick"] for r in of_kind(records(out / "log.jsonl"), "tick")] == [0]

    with mock_server_process("--port", port) as url:  # the server is fixed
        result = run_cli("resume", str(out), "-q", "--retry-errors")
        served = health(url)
    assert result.returncode == 0, result.stderr
    assert "45 errored decisions asked again" in result.stderr
    logged = read_run(out)
    decisions = [d for ds in logged.decisions.values() for d in ds]
    assert len(decisions) == 135 and all(d.valid and d.error is None for d in decisions)
    assert served["answered"] >= 135
    assert logged.end is not None and logged.end.status == "completed"
    assert run_cli("replay", str(out)).returncode == 0
