"""The fast ways a log is read (sorted by kind a chunk at a time) give what the exact
line-by-line ways give, and hand anything unusual to them."""

from __future__ import annotations

import asyncio
import gc
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

import agora.engine.log
from agora.engine.frames import _by_kind, _by_kind_line_by_line, _frame, load_run
from agora.engine.log import RunLogWriter, gc_paused
from agora.engine.records import Decision, Resumed, RunEnd, RunHeader
from agora.engine.replay import (
    LoggedRun,
    Replayer,
    ReplayError,
    _read_by_kind,
    _read_in_order,
    read_run,
)
from agora.engine.runner import execute, plan_run
from agora.policies.message_board import Like
from tests.helpers import CONFIG

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A board run with invalid answers, a stop and a resume record in it, and a torn tail."""
    out = tmp_path_factory.mktemp("fast") / "run"
    settings = {
        "run.out": str(out),
        "run.ticks": 4,
        "inference.offline.invalid_rate": 0.2,
        "inference.max_reasks": 0,
    }
    asyncio.run(execute(plan_run(CONFIG, settings, now=NOW)))
    log = out / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    after = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":1,'))
    stopped = RunEnd(
        ticks=2,
        decisions=450,
        invalid=0,
        errors=0,
        status="stopped",
        reason="budget",
        tokens_in=0,
        tokens_out=0,
        finished_at="x",
        wall_s=0.0,
    )
    resumed = Resumed(tick=2, reused=0, dropped_torn_line=False, started_at="y")
    extra = [msgspec.json.encode(r) + b"\n" for r in (stopped, resumed)]
    torn = b'{"kind":"decision","tick":9,"ag'
    log.write_bytes(b"".join([*lines[: after + 1], *extra, *lines[after + 1 :], torn]))
    return out


def same_run(a: LoggedRun, b: LoggedRun) -> None:
    assert a.header == b.header and a.end == b.end
    assert (a.lines, a.torn, a.last_tick) == (b.lines, b.torn, b.last_tick)
    assert dict(a.decisions) == dict(b.decisions)
    assert a.ticks == b.ticks
    assert a.records.keys() == b.records.keys() == {"post", "like"}
    assert all(dict(a.records[kind]) == dict(b.records[kind]) for kind in a.records)


@pytest.mark.parametrize("chunk", [None, 1000, 7], ids=["4MiB", "1000B", "7B"])
def test_read_run_by_kind_gives_what_the_exact_path_gives(run_dir, monkeypatch, chunk):
    if chunk:
        monkeypatch.setattr(agora.engine.log, "CHUNK_BYTES", chunk)
    log = run_dir / "log.jsonl"
    fast = _read_by_kind(log)
    assert fast is not None, "an engine-written log takes the fast path"
    exact = _read_in_order(log, log.read_bytes())
    exact.torn = True
    same_run(fast, exact)
    assert fast.end is not None and fast.end.status == "completed"
    assert fast.torn and len(fast.decisions) == 4
    assert sum(map(len, fast.records["like"].values())) > 0
    replayer = Replayer(read_run(run_dir))
    replayer.advance_to(3)
    assert replayer.tick == 3


def test_read_run_hands_hand_made_lines_to_the_exact_path(tmp_path, run_dir):
    lines = (run_dir / "log.jsonl").read_bytes().splitlines(keepends=True)[:-1]
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"decision"'))
    spaced = json.dumps(json.loads(lines[at])).encode() + b"\n"  # '{"kind": "decision", ...'
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join([*lines[:at], spaced, *lines[at + 1 :]]))
    assert _read_by_kind(log) is None
    same_run(read_run(log), _read_in_order(log, log.read_bytes()))
    assert read_run(log).decisions == read_run(run_dir).decisions

    for bad, why in (
        (b'{"kind":"dance","tick":0}\n', "not an agora log record"),
        (b"\n", "not an agora log record"),
        (b'{"kind":"like","tick":0,"agent":"seven","post_id":1}\n', "not an agora log record"),
    ):
        log.write_bytes(b"".join([*lines[:at], bad, *lines[at:]]))
        with pytest.raises(ReplayError, match=rf"log\.jsonl:{at + 1}: {why}"):
            read_run(log)


@pytest.mark.parametrize("chunk", [None, 1000], ids=["4MiB", "1000B"])
def test_load_run_by_kind_gives_what_the_exact_sort_gives(run_dir, monkeypatch, chunk):
    if chunk:
        monkeypatch.setattr(agora.engine.log, "CHUNK_BYTES", chunk)
    log = run_dir / "log.jsonl"
    kinds = ("decision", "tick", "post", "like")
    fast = _by_kind(log, kinds)
    assert fast is not None
    exact = _by_kind_line_by_line(log, kinds)
    assert fast[0] == exact[0] and fast[2] == exact[2]
    for kind in fast[1]:
        frame = _frame(fast[1][kind])
        assert frame.equals(_frame(exact[1][kind])) and frame.height > 0


def test_load_run_sorts_hand_made_lines_and_names_a_line_of_no_kind(tmp_path, run_dir):
    lines = (run_dir / "log.jsonl").read_bytes().splitlines(keepends=True)[:-1]
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"like"'))
    spaced = json.dumps(json.loads(lines[at])).encode() + b"\n"  # '{"kind": "like", ...'
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join([*lines[:at], spaced, *lines[at + 1 :]]))
    kinds = ("decision", "tick", "post", "like")
    assert _by_kind(log, kinds) is None
    frames, plain = load_run(log), load_run(run_dir)
    assert frames.decisions.equals(plain.decisions)
    assert frames.records["like"].equals(plain.records["like"])
    assert frames.end == plain.end

    # A kind the run did not declare (a declared kind's first letter), and lines of no kind:
    # each is named, never left out.
    for odd, why in (
        (b'{"kind":"dance","tick":0}\n', "kind 'dance' is declared by neither"),
        (b"{}\n", "not an agora log record"),
        (b"\n", "not an agora log record"),
    ):
        log.write_bytes(b"".join([lines[0], odd, *lines[1:]]))
        with pytest.raises(agora.engine.log.LogFormatError, match=rf"log\.jsonl:2: .*{why}"):
            load_run(log)

    log.write_bytes(b'{"kind":"run","run_id"')
    with pytest.raises(agora.engine.log.LogFormatError, match="header is incomplete"):
        load_run(log)
    log.write_bytes(b"")
    with pytest.raises(agora.engine.log.LogFormatError, match="starts with a 'run' header"):
        load_run(log)


def test_gc_paused_restores_the_collector_and_leaves_frozen_objects_alone():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            kept = [[n] for n in range(1000)]
        assert gc.get_freeze_count() == frozen and len(kept) == 1000
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled(), "a caller's disabled collector stays disabled"
    finally:
        gc.enable()


def test_append_writes_what_append_many_writes(tmp_path, run_dir):
    logged = read_run(run_dir)
    header: RunHeader = logged.header
    records: list[Decision | Like] = [*logged.decisions[0][:50], *logged.records["like"][1][:50]]
    with RunLogWriter(tmp_path / "one.jsonl", header=header) as one:
        for record in records:
            one.append(record)
    with RunLogWriter(tmp_path / "many.jsonl", header=header) as many:
        for record in records:
            many.append_many([record])
    assert one.records == many.records == len(records) + 1
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "many.jsonl").read_bytes()


def test_actions_are_converted_together_and_a_bad_one_is_named_alone(run_dir):
    replayer = Replayer(read_run(run_dir))
    action_type = replayer.world_plugin.action_type
    logged = [{"move_to": 3}, {"move_to": None}]
    assert replayer._actions(logged) == [msgspec.convert(a, action_type) for a in logged]
    with pytest.raises(msgspec.ValidationError) as alone:
        msgspec.convert({"move_to": "x"}, action_type)
    with pytest.raises(msgspec.ValidationError) as together:
        replayer._actions([{"move_to": 3}, {"move_to": "x"}])
    assert str(together.value) == str(alone.value)


def test_the_log_speed_bench_reports_every_row(tmp_path):
    from bench.log_speed import run_log_speed

    result = run_log_speed(3000, agents=225, keep=tmp_path / "bench-run")
    subjects = [row["subject"] for row in result["rows"]]
    assert len(subjects) == 6 and result["records"] >= 2000
    assert result["writes"]["as_run"]["records"] > result["writes"]["append"]["records"] > 0
    assert result["replay"]["ticks"] >= 1
    # Time targets are for a 1M-record log: a small one gets figures, not verdicts.
    assert [row.get("met") for row in result["rows"][4:]] == [None, None]
    assert (tmp_path / "bench-run" / "log.jsonl").exists()
