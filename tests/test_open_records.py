"""Open records: a world and a policy from outside the package (``module:attr``) log kinds of
their own; the header lists them, and replay, resume, report and ``load_run`` read them.

The world here is the counter world of ``independent_world.py`` that also logs an ``entry`` per
action from ``apply``; the policy logs a ``note`` per note an agent writes (from ``absorb``)
and a ``tally`` per tick (from ``end_tick``). ``entry`` shares its first letter with ``end``
and ``tally`` with ``tick``, so the fast readers' sort by first letter meets a collision.

A kill is made as a cut of an unbroken run's log (every line boundary, and torn lines): a
stopped run's log can only be a prefix of it, and no timer is involved.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
import pytest

import agora
from agora.engine.integrity import header_hash
from agora.engine.log import LogFormatError
from agora.engine.protocols import AnswerField, WorldParts
from agora.engine.records import LogRecord, RunHeader
from agora.engine.replay import Replayer, read_run
from agora.engine.resume import prepare_resume
from agora.engine.runner import execute, plan_run
from tests.helpers import CONFIG, REPO, of_kind, records, run_cli
from tests.independent_world import Add, CounterOffline, CounterPrompts, CounterWorld

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TICKS = 5

# ---- a world of its own kind --------------------------------------------------------------


class Entry(LogRecord, tag="entry"):
    """What one agent's action did to its counter."""

    tick: int
    agent: int
    amount: int
    total: int


class LedgerConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: str = ""
    agents: int = 4
    idle_ticks: list[int] = msgspec.field(default_factory=list)
    independent: bool = False


class LedgerWorld(CounterWorld):
    def __init__(self, config: LedgerConfig) -> None:
        super().__init__(config.agents, config.idle_ticks)
        self.independent = config.independent
        # By tick: on the free-running scheduler later ticks are applied before one closes.
        self._made: dict[int, list[Entry]] = defaultdict(list)
        # Each agent's total after each tick it acted in: what a tick's digest and metrics
        # read, so they never see a later tick an agent ran ahead to.
        self._after: dict[int, dict[int, int]] = defaultdict(dict)

    def apply(self, tick, actions, rng, missed):
        outcomes = super().apply(tick, actions, rng, missed)
        for agent, action in actions.items():
            self._made[tick].append(Entry(tick, agent, action.amount, self.totals[agent]))
            self._after[tick][agent] = self.totals[agent]
        return outcomes

    def metrics(self, tick):
        acted = self._after.get(tick, {})
        return {"acted": len(acted), "added": sum(acted.values())}

    def digest(self, tick):
        state = sorted(
            (t, a, total) for t, ts in self._after.items() if t <= tick for a, total in ts.items()
        )
        return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()

    def tick_records(self, tick: int) -> list[Entry]:
        return self._made.pop(tick, [])


# Fails the given calls of an agent's offline answers (in this process only), so a run has
# errored decisions that a resume with --retry-errors asks again.
FAIL: set[tuple[int, int]] = set()


class FailingOffline(CounterOffline):
    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()

    def decide(self, agent_id, *rest):
        self.calls[agent_id] += 1
        if (agent_id, self.calls[agent_id]) in FAIL:
            raise RuntimeError("the test's planned failure")
        return super().decide(agent_id, *rest)


class LedgerPlugin:
    name = "ledger"
    config_type = LedgerConfig
    action_type = Add
    record_types = (Entry,)

    def build(self, config: LedgerConfig, seeds: Any) -> WorldParts:
        return WorldParts(LedgerWorld(config), CounterPrompts(), FailingOffline())


WORLD = LedgerPlugin()

# ---- a policy of its own kinds ------------------------------------------------------------


class Note(LogRecord, tag="note"):
    tick: int
    agent: int
    text: str


class Tally(LogRecord, tag="tally"):
    tick: int
    notes: int


class NotesConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: str = ""
    chance: float = 0.5


class Notes:
    """Agents may leave a note; nobody else sees it, so it runs on independent worlds too."""

    def __init__(self, name: str, config: NotesConfig) -> None:
        self.name = name
        self.config = config
        self._open: Counter[int] = Counter()  # notes of ticks not yet closed
        self._closed = 0

    def view(self, agent_id, tick):
        return "You may leave a note."

    def render(self, view):
        return view

    def answer_fields(self):
        return (AnswerField("note", "a short note", required=False),)

    def absorb(self, tick, agent_id, fields, view):
        text = fields.get("note")
        if not isinstance(text, str) or not text:
            return [], []
        self._open[tick] += 1
        return [Note(tick, agent_id, text)], []

    def end_tick(self, tick):
        notes = self._open.pop(tick, 0)
        self._closed += notes
        return [Tally(tick, notes)], {"notes": notes}

    def offline_fields(self, agent_id, view, stance, rng):
        if rng.random() < self.config.chance:
            return {"note": f"note {agent_id}-{int(rng.integers(1000))}"}
        return {}

    def offline_signals(self, view):
        return {}

    def digest(self):
        return str(self._closed)  # closed ticks only: free-running agents run ahead


class NotesPlugin:
    name = "notes"
    config_type = NotesConfig
    shares_state = False
    record_types = (Note, Tally)

    def build(self, config: NotesConfig, seeds: Any, name: str, world: Any) -> Notes:
        return Notes(name, config)


NOTES = NotesPlugin()


class Stray(LogRecord, tag="stray"):
    tick: int


class StrayNotes(NotesPlugin):
    """Declares its kinds but logs one more: the writer must refuse it, not write it."""

    def build(self, config: NotesConfig, seeds: Any, name: str, world: Any) -> Notes:
        notes = Notes(name, config)
        absorb = notes.absorb

        def absorb_and_stray(tick, agent_id, fields, view):
            made, remarks = absorb(tick, agent_id, fields, view)
            return [*made, Stray(tick)], remarks

        notes.absorb = absorb_and_stray  # type: ignore[method-assign]
        return notes


STRAY = StrayNotes()

# ---- runs --------------------------------------------------------------------------------

DECLARED = {"entry": "world", "note": "policies.notes", "tally": "policies.notes"}


def config(tmp_path: Path, *, independent: bool = False, notes: str = "NOTES") -> Path:
    path = tmp_path / "ledger.toml"
    path.write_text(
        f"[run]\nticks = {TICKS}\n"
        "[inference]\nmax_reasks = 0\nconcurrency = 3\n"
        "[inference.offline]\ninvalid_rate = 0.2\n"
        f'[world]\nkind = "tests.test_open_records:WORLD"\nagents = 4\n'
        f"independent = {'true' if independent else 'false'}\n"
        f'[policies.notes]\nkind = "tests.test_open_records:{notes}"\n'
    )
    return path


def run(tmp_path: Path, name: str, **settings: Any) -> Path:
    plan = plan_run(config(tmp_path, **settings), {"run.out": str(tmp_path / name)}, now=NOW)
    asyncio.run(execute(plan))
    return plan.out_dir


def resume(run_dir: Path, *, retry_errors: bool = False) -> None:
    plan, resumption = prepare_resume(run_dir, retry_errors=retry_errors)
    asyncio.run(execute(plan, resume=resumption))


def outcome(run_dir: Path) -> tuple[Any, ...]:
    """What a run ends with, timing aside: its decisions, each declared kind's records (as a
    multiset: within a tick they are logged as answers arrive) and every tick's digest."""
    logged = read_run(run_dir)
    decisions = sorted(
        (d.tick, d.agent, d.raw, d.valid) for ds in logged.decisions.values() for d in ds
    )
    kinds = {
        kind: Counter(msgspec.json.encode(r) for rs in by_tick.values() for r in rs)
        for kind, by_tick in logged.records.items()
    }
    digests = [logged.ticks[tick][1].digest for tick in sorted(logged.ticks)]
    return decisions, kinds, digests


def logged_lines(log: Path) -> Counter[bytes]:
    """Every line of a declared kind the log holds, superseded or not."""
    return Counter(
        line
        for line in log.read_bytes().splitlines()
        if line.startswith((b'{"kind":"entry"', b'{"kind":"note"', b'{"kind":"tally"'))
    )


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("unbroken"), "run")


@pytest.fixture(scope="module")
def unbroken_free(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(tmp_path_factory.mktemp("unbroken-free"), "run", independent=True)


# ---- the tests ---------------------------------------------------------------------------


def test_declared_kinds_are_listed_logged_and_read_back(unbroken):
    log = unbroken / "log.jsonl"
    items = records(log)
    assert items[0]["records"] == DECLARED and items[0]["format"] == 3
    decisions = of_kind(items, "decision")
    valid = [d for d in decisions if d["valid"]]
    assert 0 < len(valid) < len(decisions), "some answers were invalid: those agents missed"

    entries, notes, tallies = (of_kind(items, kind) for kind in ("entry", "note", "tally"))
    assert sorted((e["tick"], e["agent"]) for e in entries) == sorted(
        (d["tick"], d["agent"]) for d in valid
    )
    written = [(d["tick"], d["agent"], d["fields"]["note"]) for d in valid if "note" in d["fields"]]
    assert written and [(n["tick"], n["agent"], n["text"]) for n in notes] == written
    assert [(t["tick"], t["notes"]) for t in tallies] == [
        (tick, sum(1 for n in notes if n["tick"] == tick)) for tick in range(TICKS)
    ]

    # Each tick's world and policy records are written in the one write with its tick record.
    for tick in range(TICKS):
        at = next(i for i, r in enumerate(items) if r["kind"] == "tick" and r["tick"] == tick)
        made = sum(1 for e in entries if e["tick"] == tick)
        closing = items[at - made - 1 : at]
        assert [r["kind"] for r in closing] == ["entry"] * made + ["tally"]
        assert all(r["tick"] == tick for r in closing)

    frames = agora.load_run(unbroken)
    assert set(frames.records) == set(DECLARED)
    assert frames.records["entry"].to_dicts() == [
        {k: v for k, v in e.items() if k != "kind"} for e in entries
    ]
    assert frames.of("note")["text"].to_list() == [n["text"] for n in notes]
    assert frames.of("tally")["notes"].to_list() == [t["notes"] for t in tallies]
    assert frames.of("decision").height == len(decisions)
    with pytest.raises(KeyError, match="no such kind"):
        frames.of("post")

    logged = read_run(unbroken)
    assert {kind: sum(map(len, ts.values())) for kind, ts in logged.records.items()} == {
        "entry": len(entries),
        "note": len(notes),
        "tally": TICKS,
    }
    assert all(isinstance(e, Entry) for es in logged.records["entry"].values() for e in es)


def test_the_cli_replays_and_reports_the_declared_kinds(unbroken, tmp_path):
    result = run_cli("replay", str(unbroken))
    assert result.returncode == 0, result.stderr
    assert f"{TICKS} ticks replayed" in result.stdout
    result = run_cli("replay", str(unbroken), "--tick", "2")
    assert result.returncode == 0, result.stderr
    made = Counter(r["kind"] for r in records(unbroken / "log.jsonl") if r.get("tick") == 2)
    shown = f"Records: entry {made['entry']}, note {made['note']}, tally 1"
    assert shown in result.stdout
    result = run_cli("report", str(unbroken))
    assert result.returncode == 0, result.stderr
    report = (unbroken / "report" / "report.md").read_text()
    entries = len(of_kind(records(unbroken / "log.jsonl"), "entry"))
    assert f"| entry | world | {entries} | {TICKS} |" in report
    assert f"| tally | policies.notes | {TICKS} | {TICKS} |" in report


@pytest.mark.parametrize("free", [False, True], ids=["lockstep", "free-running"])
def test_a_run_stopped_at_any_line_resumes_with_each_record_once(request, tmp_path, free):
    unbroken = request.getfixturevalue("unbroken_free" if free else "unbroken")
    lines = (unbroken / "log.jsonl").read_bytes().splitlines(keepends=True)
    expected = outcome(unbroken)
    cuts = [(n, b"") for n in range(1, len(lines))]
    # Torn: the head of the next line, as a crash mid-write leaves it.
    cuts += [(n, lines[n][: len(lines[n]) // 2]) for n in range(1, len(lines), 3)]
    for number, (cut, torn) in enumerate(cuts):
        out = tmp_path / f"cut{number}"
        out.mkdir()
        (out / "log.jsonl").write_bytes(b"".join(lines[:cut]) + torn)
        resume(out)
        where = f"cut after line {cut}{' with a torn line' if torn else ''}"
        assert outcome(out) == expected, where
        # No resume here asks anything again: the log holds each record exactly once.
        assert logged_lines(out / "log.jsonl") == logged_lines(unbroken / "log.jsonl"), where


def test_the_cli_resumes_a_stopped_run_with_each_record_once(unbroken, tmp_path):
    """Stopped between a tick's entries and its tick record (they are one write; a disk that
    took part of it leaves this), then resumed by the CLI."""
    lines = (unbroken / "log.jsonl").read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":2,'))
    assert lines[at - 2].startswith(b'{"kind":"entry","tick":2,')
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_bytes(b"".join(lines[: at - 1]))
    result = run_cli("resume", str(out), "-q")
    assert result.returncode == 0, result.stderr
    assert outcome(out) == outcome(unbroken)
    assert logged_lines(out / "log.jsonl") == logged_lines(unbroken / "log.jsonl")
    frames, whole = agora.load_run(out), agora.load_run(unbroken)
    for kind in DECLARED:
        assert (
            frames.of(kind)
            .sort(frames.of(kind).columns)
            .equals(whole.of(kind).sort(whole.of(kind).columns))
        ), kind
    assert run_cli("replay", str(out)).returncode == 0


def test_errored_turns_asked_again_log_their_records_once(unbroken, tmp_path):
    """A rollback supersedes the records from its tick on: they are all logged again, once."""
    FAIL.update({(1, 3), (2, 4)})  # agent 1's 3rd answer, agent 2's 4th: ticks 2 and 3
    try:
        out = run(tmp_path, "run")
    finally:
        FAIL.clear()
    errored = [d for d in of_kind(records(out / "log.jsonl"), "decision") if d["error"]]
    assert [(d["tick"], d["agent"]) for d in errored] == [(2, 1), (3, 2)]
    resume(out, retry_errors=True)
    assert outcome(out) == outcome(unbroken)
    frames = agora.load_run(out)
    assert frames.of("entry").height == frames.of("decision").filter(pl.col("valid")).height
    Replayer(read_run(out)).advance_to(TICKS - 1)


def test_a_line_of_an_undeclared_kind_is_named_not_dropped(unbroken, tmp_path):
    lines = (unbroken / "log.jsonl").read_bytes().splitlines(keepends=True)
    out = tmp_path / "run"
    out.mkdir()
    log = out / "log.jsonl"
    log.write_bytes(b"".join([*lines[:5], b'{"kind":"mystery","tick":0}\n', *lines[5:-1]]))
    why = (
        f"{log}:6: not an agora log record (kind 'mystery' is declared by neither the run's "
        "world nor its policies; its header declares: entry, note, tally)"
    )
    for command in ("replay", "report", "resume"):
        result = run_cli(command, str(out))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == f"agora {command}: {why}\n", command
    with pytest.raises(LogFormatError, match=r"log\.jsonl:6: not an agora log record \(kind "):
        agora.load_run(out)
    # A line of a declared kind's first letter is no way in either.
    log.write_bytes(b"".join([*lines[:5], b'{"kind":"tallyho","tick":0}\n', *lines[5:]]))
    with pytest.raises(LogFormatError, match=r"log\.jsonl:6: .*kind 'tallyho'"):
        agora.load_run(out)
    with pytest.raises(agora.ReplayError, match=r"log\.jsonl:6: .*kind 'tallyho'"):
        read_run(out)


def test_a_record_no_plugin_declared_is_refused_and_the_log_stays_readable(tmp_path):
    out = run(tmp_path, "run", notes="STRAY")
    decisions = of_kind(records(out / "log.jsonl"), "decision")
    assert not any(line.startswith(b'{"kind":"stray"') for line in (out / "log.jsonl").open("rb"))
    errored = [d for d in decisions if d["error"]]
    assert errored and all("'stray' record cannot be logged" in d["error"] for d in errored)
    assert read_run(out).end is not None
    assert set(agora.load_run(out).records) == set(DECLARED)


def test_declarations_are_checked_when_the_run_is_planned(tmp_path):
    class NoTick(LogRecord, tag="notick"):
        agent: int

    class Clash(LogRecord, tag="tick"):
        tick: int

    from agora.engine.config import ConfigError
    from agora.engine.record_kinds import declare

    for types, why in (
        ((NoTick,), r"world\.kind: record kind 'notick' needs a `tick: int` field"),
        ((Clash,), r"world\.kind: record kind 'tick' is one of the engine's own"),
        ((dict,), r"world\.kind: record_types holds .* not a LogRecord subclass"),
    ):
        world = type("W", (), {"record_types": types})()
        with pytest.raises(ConfigError, match=why):
            declare(world, [])

    class OtherEntry(LogRecord, tag="entry"):
        tick: int

    other = type("P", (), {"record_types": (OtherEntry,)})()
    with pytest.raises(ConfigError, match=r"policies\.x\.kind: record kind 'entry' is declared"):
        declare(WORLD, [("x", other)])
    # One plugin twice (two policies of one kind): its kinds are declared once, by the first.
    assert declare(WORLD, [("a", NOTES), ("b", NOTES)]).declarers == {
        "entry": "world",
        "note": "policies.a",
        "tally": "policies.a",
    }
    result = run_cli("check", str(config(tmp_path)))
    assert result.returncode == 0, result.stderr


# ---- logs written before headers listed their kinds ----------------------------------------

FORMAT2 = REPO / "tests" / "data" / "format2_city" / "log.jsonl"


def test_a_log_written_before_headers_listed_kinds_still_verifies_and_reads():
    """A real format-2 city log (the board's kinds were the engine's then): its header hash
    still matches, and its kinds are found through the plugins' own declarations."""
    header = records(FORMAT2)[0]
    assert header["format"] == 2 and "records" not in header
    logged = read_run(FORMAT2)  # an unmatched hash is "the run header was edited"
    assert logged.kinds.declarers == {"post": "policies.board", "like": "policies.board"}
    counts = {kind: sum(map(len, ts.values())) for kind, ts in logged.records.items()}
    assert counts == {"post": 10, "like": 9}
    frames = agora.load_run(FORMAT2)
    assert {kind: f.height for kind, f in frames.records.items()} == counts
    assert frames.records["post"]["text"].to_list() == [
        p["text"] for p in of_kind(records(FORMAT2), "post")
    ]


def test_an_older_header_that_gained_a_kind_list_was_edited(tmp_path):
    lines = FORMAT2.read_bytes().splitlines(keepends=True)
    header = msgspec.json.decode(lines[0])
    header["records"] = {"post": "policies.board"}  # its hash never covered a list
    log = tmp_path / "log.jsonl"
    log.write_bytes(msgspec.json.encode(header) + b"\n" + b"".join(lines[1:]))
    with pytest.raises(agora.ReplayError, match="the run header was edited"):
        read_run(log)


def test_a_format_2_log_replays_and_resumes(tmp_path):
    """A city log made now, written back as format 2 wrote it (no kind list, its hash over the
    rest), cut mid-run: replay and resume find the board's kinds through the plugins."""
    plan = plan_run(
        CONFIG,
        {
            "run.out": str(tmp_path / "made"),
            "run.ticks": 3,
            "world.agents": 9,
            "world.districts": 3,
            "world.cells_per_district": 5,
        },
        now=NOW,
    )
    asyncio.run(execute(plan))
    lines = (plan.out_dir / "log.jsonl").read_bytes().splitlines(keepends=True)
    header = msgspec.json.decode(lines[0], type=RunHeader)
    old = msgspec.structs.replace(header, format=2, records={}, header_hash=None)
    old = msgspec.structs.replace(old, header_hash=header_hash(old))
    fields = msgspec.to_builtins(old)
    del fields["records"]
    out = tmp_path / "run"
    out.mkdir()
    at = next(i for i, line in enumerate(lines) if line.startswith(b'{"kind":"tick","tick":1,'))
    (out / "log.jsonl").write_bytes(msgspec.json.encode(fields) + b"\n" + b"".join(lines[1:at]))
    result = run_cli("replay", str(out))
    assert result.returncode == 0, result.stderr
    result = run_cli("resume", str(out), "-q")
    assert result.returncode == 0, result.stderr
    resumed, whole = records(out / "log.jsonl"), records(plan.out_dir / "log.jsonl")
    for kind in ("post", "like"):
        assert sorted(map(str, of_kind(resumed, kind))) == sorted(map(str, of_kind(whole, kind)))
    assert [t["digest"] for t in of_kind(resumed, "tick")] == [
        t["digest"] for t in of_kind(whole, "tick")
    ]


def test_a_declaring_plugin_that_is_gone_is_named_at_the_header(unbroken, tmp_path):
    lines = (unbroken / "log.jsonl").read_bytes().splitlines(keepends=True)
    header = msgspec.json.decode(lines[0], type=RunHeader)
    moved = msgspec.structs.replace(header, world="tests.test_open_records:GONE", header_hash=None)
    moved = msgspec.structs.replace(moved, header_hash=header_hash(moved))
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_bytes(msgspec.json.encode(moved) + b"\n" + b"".join(lines[1:]))
    for command in ("replay", "resume"):
        result = run_cli(command, str(out))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.startswith(
            f"agora {command}: {out / 'log.jsonl'}:1: the record kinds of the run cannot be "
            "read (world.kind: cannot load 'tests.test_open_records:GONE'"
        ), result.stderr
        assert result.stderr.count("\n") == 1
    # Frames need only the kinds' names, which the header lists.
    assert set(agora.load_run(out).records) == set(DECLARED)


def test_the_engine_holds_no_world_s_record_kinds():
    """The board's kinds are the board's: the engine neither defines nor names them."""
    import agora.engine.records as engine_records

    assert not hasattr(engine_records, "Post") and not hasattr(engine_records, "Like")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "engine").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r'tag="(post|like)"|posts_logged|\bPost\b|\bLike\b', line)
    ]
    assert not found, found
