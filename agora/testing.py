"""A conformance kit for worlds: the guarantees every world plug-in keeps, checked on small runs
of that world. A world's own test module gets them as pytest tests in a few lines::

    from agora.testing import WorldConformance

    class TestMyWorld(WorldConformance):
        config = {"world": {"kind": "my_pkg.world:PLUGIN", "agents": 8}, "run": {"ticks": 4}}

The checks (each also a ``ConformanceKit`` method, for use without pytest):

- **reproducible**: two runs with one seed write the same log apart from ``TIMING_FIELDS``;
  another seed changes some decision or digest (unless ``seed_matters = False``);
- **replay**: the log alone rebuilds every tick to the digest it recorded;
- **records**: every record of the log comes back through ``agora.load_run`` with its values;
- **faults**: with many invalid answers (re-asked) and provider errors, on each scheduler the
  world allows, the run completes, each turn has one decision, tick counts add up, replay
  agrees, and what the world reports of valid and missed turns matches the log;
- **schedulers**: an independent world gives the same decisions and ticks free-running and in
  lockstep;
- **kill and resume**: a run killed with SIGKILL at a fixed request (not a timer) and resumed
  ends with the same effective records, digest for digest, as the unbroken run.

Faults and the kill come from a backend of the kit's own (``FAULTY_BACKEND``): the offline
backend's answers, with invalid answers and errors drawn from each request's seed (so the same
requests fail whatever order they are asked in) and, once per run, a SIGKILL of its own process.
The kill needs POSIX signals.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NoReturn

import msgspec
import polars as pl

from agora.api import Config, Run, run
from agora.engine.config import InferenceSection, apply_overrides, read_toml
from agora.engine.frames import RunFrames, load_run
from agora.engine.inference.backends import OFFLINE, BackendContext
from agora.engine.inference.errors import InferenceError
from agora.engine.log import LOG_NAME
from agora.engine.protocols import LLMClient
from agora.engine.records import TIMING_FIELDS, Completion, EndpointReport, Request
from agora.engine.replay import Replayer, check_decisions, read_run
from agora.engine.resume import prepare_resume
from agora.engine.runner import execute

if TYPE_CHECKING:
    import pytest

LOCKSTEP, FREE_RUNNING = "lockstep", "free-running"
# ``run.scheduler`` asks for free-running with "auto" (an independent world then runs so).
_SCHEDULER_SETTING = {LOCKSTEP: "lockstep", FREE_RUNNING: "auto"}
# Records of the log's own bookkeeping, read by ``load_run`` as header and end, not as frames.
_BOOKKEEPING = frozenset({"run", "resume", "end"})
# The frames ``RunFrames`` names today, by record kind; the first two are the engine's own
# kinds, the others a policy's until open records move them out of the engine.
_ENGINE_KINDS = frozenset({"decision", "tick"})
# The header field that lists the kinds a run declares (kind → who declares it; logs of
# format 3 on). Where a header has it, every kind the log holds must be the engine's or listed
# there; either way each kind the log holds must come back from load_run.
_HEADER_KINDS_FIELD = "records"


class ConformanceError(AssertionError):
    """A world broke one of the kit's guarantees; the message says which and where."""


# ---- the faulty backend --------------------------------------------------------------------

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Faults(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The kit backend's options (``[inference."agora.testing:FAULTY_OFFLINE"]``)."""

    # Shares of requests answered with unreadable text, and failing like a dead server.
    invalid_rate: Probability = 0.0
    error_rate: Probability = 0.0
    # Only requests of this ask of a multi-ask turn are faulted; None: every request.
    ask: str | None = None
    # SIGKILL this process at its kill_after-th request, unless kill_marker exists (it is
    # created first, so the resumed run, built from the same header, is not killed again).
    kill_after: Annotated[int, msgspec.Meta(ge=1)] | None = None
    kill_marker: str | None = None


# Two kinds of unusable answer a model gives: prose, and JSON cut off mid-object.
_PROSE = "I need to think about this more before I can answer."


class FaultyClient:
    """The offline client with seeded faults on top: one behaviour added by one layer."""

    backend = "offline+faults"

    def __init__(self, inner: LLMClient, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults
        self._asked = 0

    @property
    def model(self) -> str:
        return self._inner.model

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        return await self._inner.prepare(known)

    def reports(self) -> list[EndpointReport]:
        return self._inner.reports()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def complete(self, request: Request) -> Completion:
        self._asked += 1
        faults = self._faults
        if faults.kill_after is not None and self._asked >= faults.kill_after:
            self._kill_once()
        ask = _ask_name(request)
        targeted = faults.ask is None or faults.ask == ask
        if targeted and _draw(request, ask, "error") < faults.error_rate:
            raise InferenceError(
                "HTTP 500: a fault injected by the conformance kit", retryable=False
            )
        completion = await self._inner.complete(request)
        if targeted and _draw(request, ask, "invalid") < faults.invalid_rate:
            text = completion.text
            broken = _PROSE if _draw(request, ask, "form") < 0.5 else text[: max(1, len(text) // 2)]
            completion = msgspec.structs.replace(completion, text=broken)
        return completion

    def _kill_once(self) -> None:
        marker = self._faults.kill_marker
        if marker is not None:
            if Path(marker).exists():
                return
            Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)


def _ask_name(request: Request) -> str | None:
    """Which ask of a multi-ask turn ``request`` is (None: a one-ask turn)."""
    return request.ask.name if request.ask is not None else None


def _draw(request: Request, ask: str | None, what: str) -> float:
    """A uniform number from the request alone: the same request draws the same in any run,
    whatever order requests arrive in, so a resumed run meets the faults the unbroken one met."""
    key = f"{request.seed}|{request.tick}|{request.agent_id}|{request.attempt}|{ask}|{what}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


class FaultyOfflineBackend:
    """A backend plug-in by path (``inference.backend = FAULTY_BACKEND``), so a faulty run is
    an ordinary run: its header names it, and replay and resume rebuild it like any other."""

    name = "agora.testing:FAULTY_OFFLINE"
    config_type = Faults
    layered = False  # the offline answers under it are free and exact, as for offline itself

    def build(self, settings: InferenceSection, options: Any, context: BackendContext) -> LLMClient:
        return FaultyClient(OFFLINE.build(settings, settings.offline, context), options)


FAULTY_OFFLINE = FaultyOfflineBackend()
FAULTY_BACKEND = FAULTY_OFFLINE.name


# ---- the kit -------------------------------------------------------------------------------


@dataclass
class ConformanceKit:
    """The runs of one world that the checks need, each made once, in ``workdir``.

    ``config`` is a small run of the world (a TOML path or a dict: few agents, few ticks, the
    offline backend); ``overrides`` sets dotted fields on it. ``valid_metric`` and
    ``missed_metric`` name tick metrics the world reports as that tick's valid decisions and
    missed turns; ``valid_turns`` reads, from a replayed world, each agent's valid turns as the
    world counts them. ``same_turns_under_faults``: who has a turn does not depend on answers
    (set False for a world where it does). ``seed_matters``: the world draws something."""

    config: Config
    workdir: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)
    seed_matters: bool = True
    valid_metric: str | None = None
    missed_metric: str | None = None
    valid_turns: Callable[[Any], Mapping[int, int] | None] | None = None
    same_turns_under_faults: bool = True
    invalid_rate: float = 0.5
    error_rate: float = 0.2
    # One re-ask: re-asks are exercised and many answers still end invalid.
    max_reasks: int = 1
    # The share of the unbroken run's requests after which the killed run dies.
    kill_at: float = 0.5
    _runs: dict[str, Run] = field(default_factory=dict, init=False, repr=False)

    # -- the runs

    def raw(self) -> dict[str, Any]:
        """The config as a dict, the overrides applied."""
        if isinstance(self.config, Mapping):
            base = dict(self.config)
        else:
            base = read_toml(Path(self.config))
        return apply_overrides(base, self.overrides)

    def seed(self) -> int:
        return int(self.raw().get("run", {}).get("seed", 0))

    def clean(self, name: str = "base", seed: int | None = None) -> Run:
        """A run as configured (scheduler "auto"), under ``workdir/name``."""
        if name not in self._runs:
            raw = apply_overrides(self.raw(), {"run.scheduler": "auto"})
            self._runs[name] = self._run(raw, name, seed)
        return self._runs[name]

    def faulty(self, scheduler: str, ask: str | None = None) -> Run:
        """A run with invalid answers and errors, on ``scheduler`` (LOCKSTEP or FREE_RUNNING)."""
        name = f"faults-{scheduler}" + (f"-{ask}" if ask is not None else "")
        if name not in self._runs:
            self._runs[name] = self._run(self._faulty_raw(scheduler, ask), name)
        return self._runs[name]

    def asks_made(self) -> list[str]:
        """The asks of the world's multi-ask turns, as its clean run made them (in the order
        first made); empty for a world of one-ask turns."""
        made: dict[str, None] = {}
        logged = read_run(self.clean().path)
        for tick in sorted(logged.decisions):
            for decision in logged.decisions[tick]:
                made.update((call.ask, None) for call in decision.calls or ())
        return list(made)

    @property
    def independent(self) -> bool:
        """Whether the world runs free-running when let (its header says so)."""
        scheduler: str = _header(self.clean().path)["scheduler"]
        return scheduler == FREE_RUNNING

    def schedulers(self) -> list[str]:
        """The schedulers the world allows: lockstep always, free-running if independent."""
        return [LOCKSTEP, FREE_RUNNING] if self.independent else [LOCKSTEP]

    def _faulty_raw(self, scheduler: str, ask: str | None, **kill: Any) -> dict[str, Any]:
        raw = apply_overrides(
            self.raw(),
            {
                "run.scheduler": _SCHEDULER_SETTING[scheduler],
                # Errors are the point here: the run must complete through them.
                "run.max_error_rate": 1.0,
                "inference.backend": FAULTY_BACKEND,
                "inference.model": FaultyClient.backend,
                "inference.max_reasks": self.max_reasks,
            },
        )
        faults = Faults(self.invalid_rate, self.error_rate, ask, **kill)
        # Set directly: the table's name holds dots, which an override path would split.
        raw["inference"][FAULTY_BACKEND] = msgspec.to_builtins(faults)
        return raw

    def _run(self, raw: dict[str, Any], name: str, seed: int | None = None) -> Run:
        return run(raw, out=self.workdir / name, seed=seed)

    # -- the checks

    def check_reproducible(self) -> None:
        """Same seed, same log (timing fields aside); another seed, another run."""
        seed = self.seed()
        first, second = self.clean(), self.clean("repeat", seed)
        a, b = _comparable_log(first.path), _comparable_log(second.path)
        for number, (left, right) in enumerate(zip(a, b, strict=False), start=1):
            if left != right:
                raise ConformanceError(
                    f"two runs with seed {seed} differ at line {number} of their logs "
                    f"({first.path / LOG_NAME} and {second.path / LOG_NAME}):\n"
                    f"  {left}\n  {right}"
                )
        if len(a) != len(b):
            raise ConformanceError(
                f"two runs with seed {seed} wrote {len(a)} and {len(b)} log lines"
            )
        if self.seed_matters:
            other = self.clean("other-seed", seed + 1)
            if _outcome(first.path) == _outcome(other.path):
                raise ConformanceError(
                    f"seeds {seed} and {seed + 1} gave the same decisions and digests: the "
                    "world draws nothing from its seed (set seed_matters = False if it draws "
                    "nothing at all)"
                )

    def check_replay(self, path: Path | None = None) -> int:
        """Rebuild every tick of the run at ``path`` (default: the clean run) from its log and
        check each digest; returns the ticks replayed."""
        return check_replay(path or self.clean().path)

    def check_records(self, path: Path | None = None) -> None:
        """Every record of the log at ``path`` (default: the clean run) through ``load_run``."""
        check_records(path or self.clean().path)

    def check_faults(self, scheduler: str = LOCKSTEP, ask: str | None = None) -> None:
        """Invalid answers and errors on ``scheduler``: no turn lost, doubled or misplaced."""
        faulty = self.faulty(scheduler, ask)
        at_ask = f" at ask {ask!r}" if ask is not None else ""
        where = f"the run with faults{at_ask} on {scheduler} at {faulty.path}"
        if faulty.summary.status != "completed":
            raise ConformanceError(
                f"{where} ended {faulty.summary.status}: {faulty.summary.reason}"
            )
        decisions = _of_kind(faulty.path, "decision")
        ticks = _of_kind(faulty.path, "tick")
        keys = [(d["tick"], d["agent"]) for d in decisions]
        doubled = [key for key, n in Counter(keys).items() if n > 1]
        if doubled:
            raise ConformanceError(f"{where}: (tick, agent) {doubled[0]} has two decisions")
        invalid = sum(1 for d in decisions if not d["valid"] and d["error"] is None)
        errors = sum(1 for d in decisions if d["error"] is not None)
        # One ask alone may take any text (a free-text reply): only errors are sure to fall.
        wants_invalid = self.invalid_rate > 0 and ask is None
        if (wants_invalid and invalid == 0) or (self.error_rate > 0 and errors == 0):
            raise ConformanceError(
                f"{where} had {invalid} invalid and {errors} errored decisions: the check "
                "tested nothing; give the run more agents or ticks"
            )
        expected_ticks = int(_header(faulty.path)["config"]["run"]["ticks"])
        if [t["tick"] for t in ticks] != list(range(expected_ticks)):
            raise ConformanceError(
                f"{where} closed ticks {[t['tick'] for t in ticks]}, not 0 to {expected_ticks - 1}"
            )
        by_tick: dict[int, list[dict[str, Any]]] = {}
        for decision in decisions:
            by_tick.setdefault(decision["tick"], []).append(decision)
        for tick in ticks:
            _check_tick_counts(tick, by_tick.get(tick["tick"], []), where)
            self._check_reported(tick, where)
        if self.same_turns_under_faults:
            clean = {(d["tick"], d["agent"]) for d in _of_kind(self.clean().path, "decision")}
            if set(keys) != clean:
                extra = sorted(set(keys) - clean)[:3]
                lost = sorted(clean - set(keys))[:3]
                raise ConformanceError(
                    f"{where}: other turns than the run without faults had (first extra "
                    f"{extra}, first lost {lost}); set same_turns_under_faults = False if who "
                    "has a turn depends on the answers"
                )
        check_replay(faulty.path)
        check_records(faulty.path)
        if self.valid_turns is not None:
            self._check_valid_turns(faulty.path, decisions, where)

    def check_schedulers(self) -> None:
        """An independent world makes the same decisions and ticks on both schedulers."""
        if not self.independent:
            return
        lockstep, free = self.faulty(LOCKSTEP), self.faulty(FREE_RUNNING)
        if _header(free.path)["scheduler"] != FREE_RUNNING:
            raise ConformanceError(f"{free.path}: an independent world did not run free-running")
        _same_outcome(lockstep.path, free.path, "the lockstep run", "the free-running run")

    def check_kill_and_resume(self, scheduler: str = LOCKSTEP) -> None:
        """SIGKILL the run with faults on ``scheduler`` at a fixed request, cut its log's last
        line as a crash mid-write would, resume it, and compare with the unbroken run."""
        unbroken = self.faulty(scheduler)
        out = self.workdir / f"killed-{scheduler}"
        kill_after = max(1, int(unbroken.summary.requests * self.kill_at))
        raw = self._faulty_raw(
            scheduler,
            None,
            kill_after=kill_after,
            kill_marker=str(self.workdir / f"killed-{scheduler}.marker"),
        )
        raw = apply_overrides(raw, {"run.out": str(out)})
        _run_killed(raw, self.workdir / f"killed-{scheduler}.json")
        log = out / LOG_NAME
        if _header(out)["scheduler"] != scheduler:
            raise ConformanceError(f"{log}: the killed run did not run {scheduler}")
        with log.open("ab") as file:
            file.write(b'{"kind":"decision","tick":')  # a line torn by the crash
        plan, resumption = prepare_resume(out)
        summary = asyncio.run(execute(plan, resume=resumption))
        if summary.status != "completed":
            raise ConformanceError(f"{log}: the resumed run ended {summary.status}")
        if not any(r.get("rollback") for r in _of_kind(out, "resume")):
            keys = Counter((d["tick"], d["agent"]) for d in _of_kind(out, "decision"))
            doubled = [key for key, n in keys.items() if n > 1]
            if doubled:
                raise ConformanceError(f"{log}: (tick, agent) {doubled[0]} is logged twice")
        _same_outcome(unbroken.path, out, "the unbroken run", "the killed and resumed run")
        check_replay(out)

    def check_all(self) -> None:
        """Every check, on every scheduler the world allows (for use outside pytest)."""
        self.check_reproducible()
        self.check_replay()
        self.check_records()
        for scheduler in self.schedulers():
            self.check_faults(scheduler)
            self.check_kill_and_resume(scheduler)
        self.check_schedulers()

    def _check_reported(self, tick: dict[str, Any], where: str) -> None:
        metrics = tick["metrics"]
        expected = {
            self.valid_metric: tick["valid"],
            self.missed_metric: tick["invalid"] + tick["errors"],
        }
        for name, count in expected.items():
            if name is None:
                continue
            if name not in metrics:
                raise ConformanceError(f"{where}: tick {tick['tick']} reports no metric {name!r}")
            if metrics[name] != count:
                raise ConformanceError(
                    f"{where}: tick {tick['tick']} reports {name} = {metrics[name]}, but the "
                    f"log holds {count} such turns (valid {tick['valid']}, invalid "
                    f"{tick['invalid']}, errors {tick['errors']})"
                )

    def _check_valid_turns(self, path: Path, decisions: list[dict[str, Any]], where: str) -> None:
        assert self.valid_turns is not None
        replayer = _replayed(path)
        reported = self.valid_turns(replayer.world)
        if reported is None:
            return
        logged = Counter(d["agent"] for d in decisions if d["valid"])
        for agent in sorted({*logged, *reported}):
            if reported.get(agent, 0) != logged.get(agent, 0):
                raise ConformanceError(
                    f"{where}: the world counts {reported.get(agent, 0)} valid turns for agent "
                    f"{agent}, the log holds {logged.get(agent, 0)}"
                )


# ---- checks on one run's log ---------------------------------------------------------------


def check_replay(path: Path) -> int:
    """Rebuild every tick of the run at ``path`` from its log alone, each digest checked (as
    ``agora replay`` does, an edited decision named by its line); returns the ticks replayed."""
    logged = read_run(path)
    check_decisions(logged)
    replayer = Replayer(logged)
    for tick in range(logged.last_tick + 1):
        recorded = replayer.step()  # raises ReplayError on a digest that does not match
        if recorded.tick != tick:
            raise ConformanceError(f"{logged.path}: replay reached tick {recorded.tick} at {tick}")
    return logged.last_tick + 1


def check_records(path: Path) -> None:
    """Each record of the log at ``path`` (one without a resume) is in ``load_run``'s frames,
    value for value and in log order; a kind with no frame is dropped, and fails the check."""
    log = Path(path) / LOG_NAME if Path(path).is_dir() else Path(path)
    records = _records(log)
    if any(r["kind"] == "resume" for r in records):
        raise ConformanceError(f"{log}: check_records reads logs without a resume")
    try:
        frames = load_run(log)
    except ValueError as exc:  # a LogFormatError naming the line, or a declarer now gone
        raise ConformanceError(f"load_run refused a log the run wrote: {exc}") from None
    if _canonical(frames.header) != _canonical(records[0]):
        raise ConformanceError(f"{log}:1: load_run's header is not the log's")
    ends = [r for r in records if r["kind"] == "end"]
    if ends and (frames.end is None or _canonical(frames.end) != _canonical(ends[-1])):
        raise ConformanceError(f"{log}: load_run's end is not the log's last end record")
    logged_kinds = {r["kind"] for r in records} - _BOOKKEEPING
    listed = frames.header.get(_HEADER_KINDS_FIELD)
    declared = set(listed) if isinstance(listed, list | dict) else set()
    if declared:
        undeclared = sorted(logged_kinds - declared - _ENGINE_KINDS)
        if undeclared:
            raise ConformanceError(f"{log}: kinds {undeclared} are logged but not declared")
    for kind in sorted(logged_kinds | declared):
        logged = [(n, r) for n, r in enumerate(records, start=1) if r["kind"] == kind]
        frame = _frame_of(frames, kind)
        if frame is None:
            if not logged:
                continue  # declared, never logged: nothing to lose
            raise ConformanceError(f"{log}: records of kind {kind!r} have no frame in load_run")
        rows = frame.to_dicts()
        if len(rows) != len(logged):
            raise ConformanceError(
                f"{log}: {len(logged)} {kind!r} records, {len(rows)} rows in load_run's frame"
            )
        for (number, record), row in zip(logged, rows, strict=True):
            if not _reads_back(_canonical(record), _canonical(row)):
                raise ConformanceError(
                    f"{log}:{number}: the {kind!r} record reads back from load_run as\n"
                    f"  {_canonical(row)}\nnot\n  {_canonical(record)}"
                )


def _frame_of(frames: RunFrames, kind: str) -> pl.DataFrame | None:
    """``load_run``'s frame of a record kind, None where it gives none."""
    if kind in _ENGINE_KINDS:
        return frames.of(kind)
    found = frames.records.get(kind)
    return found if isinstance(found, pl.DataFrame) else None


def _check_tick_counts(tick: dict[str, Any], decisions: list[dict[str, Any]], where: str) -> None:
    valid = sum(1 for d in decisions if d["valid"])
    errors = sum(1 for d in decisions if d["error"] is not None)
    counted = {
        "decisions": len(decisions),
        "valid": valid,
        "invalid": len(decisions) - valid - errors,
        "errors": errors,
    }
    recorded = {name: tick[name] for name in counted}
    if recorded != counted:
        raise ConformanceError(
            f"{where}: tick {tick['tick']} records {recorded}, its decisions make {counted}"
        )


def _same_outcome(a: Path, b: Path, a_name: str, b_name: str) -> None:
    """The two runs' effective records (as ``load_run`` gives them) agree, timing aside; within
    a tick in any order, since records are logged as answers arrive."""
    digests_a, digests_b = _digests(a), _digests(b)
    if digests_a != digests_b:
        first = next(
            (i for i, (x, y) in enumerate(zip(digests_a, digests_b, strict=False)) if x != y),
            min(len(digests_a), len(digests_b)),
        )
        raise ConformanceError(
            f"{a_name} ({a}) and {b_name} ({b}) part at tick {first}: digests "
            f"{digests_a[first : first + 1]} and {digests_b[first : first + 1]}"
        )
    frames_a, frames_b = load_run(a), load_run(b)
    kinds = {r["kind"] for path in (a, b) for r in _records(path / LOG_NAME)} - _BOOKKEEPING
    for kind in sorted(kinds):
        rows_a, rows_b = _sorted_rows(frames_a, kind), _sorted_rows(frames_b, kind)
        if rows_a != rows_b:
            only_a = [r for r in rows_a if r not in rows_b][:1]
            only_b = [r for r in rows_b if r not in rows_a][:1]
            raise ConformanceError(
                f"{a_name} ({a}) and {b_name} ({b}) differ in their {kind!r} records "
                f"({len(rows_a)} and {len(rows_b)}); first only in one: {only_a}, "
                f"first only in the other: {only_b}"
            )


def _sorted_rows(frames: RunFrames, kind: str) -> list[Any]:
    frame = _frame_of(frames, kind)
    rows = [_canonical(row) for row in frame.to_dicts()] if frame is not None else []
    return sorted(rows, key=lambda row: msgspec.json.encode(row, order="sorted"))


def _replayed(path: Path) -> Replayer:
    logged = read_run(path)
    replayer = Replayer(logged)
    replayer.advance_to(logged.last_tick)
    return replayer


def _run_killed(raw: dict[str, Any], config_file: Path) -> None:
    """Run ``raw`` in a child process that its backend kills with SIGKILL mid-run."""
    config_file.write_bytes(msgspec.json.encode(raw))
    child = (
        "import sys, msgspec, agora\n"
        "agora.run(msgspec.json.decode(open(sys.argv[1], 'rb').read()))\n"
    )
    # The child finds what this process finds: a world given as module:attr in a test folder.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-c", child, str(config_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != -signal.SIGKILL:
        raise ConformanceError(
            f"the run to be killed ended with exit {result.returncode}, not SIGKILL "
            f"(config {config_file}):\n{result.stderr[-2000:]}"
        )


# ---- reading logs --------------------------------------------------------------------------


def _records(log: Path) -> list[dict[str, Any]]:
    decode = msgspec.json.Decoder(dict[str, Any]).decode
    return [decode(line) for line in log.read_bytes().splitlines()]


def _header(path: Path) -> dict[str, Any]:
    with (path / LOG_NAME).open("rb") as file:
        return msgspec.json.decode(file.readline(), type=dict[str, Any])


def _of_kind(path: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in _records(path / LOG_NAME) if r["kind"] == kind]


def _digests(path: Path) -> list[str]:
    logged = read_run(path)
    return [logged.ticks[tick][1].digest for tick in sorted(logged.ticks)]


def _outcome(path: Path) -> tuple[list[Any], list[str]]:
    decisions = sorted(
        (d["tick"], d["agent"], d["raw"], d["valid"]) for d in _of_kind(path, "decision")
    )
    return decisions, _digests(path)


def _comparable_log(path: Path) -> list[Any]:
    """The log's records, timing aside; the header without what names the run's place."""
    records = [_without_timing(r) for r in _records(path / LOG_NAME)]
    header = records[0]
    header.pop("run_id", None)
    header.get("config", {}).get("run", {}).pop("out", None)
    return records


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING_FIELDS}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _reads_back(logged: Any, read: Any) -> bool:
    """Whether a frame's value is the logged one. A column whose values differ in type (one
    ask's answer an object, another's a string) can only be text in a frame: there a value may
    be the JSON text of the logged one."""
    if isinstance(logged, dict) and isinstance(read, dict):
        return logged.keys() == read.keys() and all(
            _reads_back(v, read[k]) for k, v in logged.items()
        )
    if isinstance(logged, list) and isinstance(read, list):
        return len(logged) == len(read) and all(map(_reads_back, logged, read))
    if isinstance(read, str) and not isinstance(logged, str):
        try:
            return bool(_canonical(msgspec.json.decode(read)) == logged)
        except msgspec.DecodeError:
            return False
    return bool(logged == read)


def _canonical(value: Any) -> Any:
    """A record or a frame's row as both can be compared: timing fields, ``kind`` and unset
    values left out (a frame fills a field some records lack with null)."""
    if isinstance(value, dict):
        kept = {
            k: _canonical(v)
            for k, v in value.items()
            if k not in TIMING_FIELDS and k != "kind" and v is not None
        }
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


# ---- pytest --------------------------------------------------------------------------------


class WorldConformance:
    """The kit as pytest tests: subclass it as ``Test<YourWorld>`` and set ``config``.

    Each class makes its runs once (in a temporary folder), as its tests first need them.
    Override ``valid_turns`` to count each agent's valid turns from a replayed world."""

    config: ClassVar[Config]
    overrides: ClassVar[Mapping[str, Any]] = {}
    seed_matters: ClassVar[bool] = True
    valid_metric: ClassVar[str | None] = None
    missed_metric: ClassVar[str | None] = None
    same_turns_under_faults: ClassVar[bool] = True
    # The asks of a multi-ask turn to fault one at a time (each a run of its own); empty:
    # every ask the world's turns make in a clean run.
    asks: ClassVar[Sequence[str]] = ()
    _conformance_kit: ClassVar[ConformanceKit | None] = None

    def valid_turns(self, world: Any) -> Mapping[int, int] | None:
        """Each agent's valid turns as the world counts them; None: the world does not."""
        return None

    def conformance_kit(self, tmp_path_factory: pytest.TempPathFactory) -> ConformanceKit:
        cls = type(self)
        # Looked up on this class alone: a subclass of a conforming test class runs its own.
        kit = cls.__dict__.get("_conformance_kit")
        if not isinstance(kit, ConformanceKit):
            kit = ConformanceKit(
                config=cls.config,
                workdir=tmp_path_factory.mktemp(cls.__name__),
                overrides=cls.overrides,
                seed_matters=cls.seed_matters,
                valid_metric=cls.valid_metric,
                missed_metric=cls.missed_metric,
                valid_turns=self.valid_turns,
                same_turns_under_faults=cls.same_turns_under_faults,
            )
            cls._conformance_kit = kit
        return kit

    def test_the_same_seed_gives_the_same_log(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self.conformance_kit(tmp_path_factory).check_reproducible()

    def test_replay_rebuilds_every_tick_to_its_digest(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self.conformance_kit(tmp_path_factory).check_replay()

    def test_every_record_round_trips_through_load_run(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self.conformance_kit(tmp_path_factory).check_records()

    def test_invalid_and_errored_answers_in_lockstep(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self.conformance_kit(tmp_path_factory).check_faults(LOCKSTEP)

    def test_invalid_and_errored_answers_free_running(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self._free_running(tmp_path_factory).check_faults(FREE_RUNNING)

    def test_invalid_and_errored_answers_at_each_ask(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        kit = self.conformance_kit(tmp_path_factory)
        # Named, or else every ask the world's turns made in a clean run.
        asks = list(self.asks) or kit.asks_made()
        if not asks:
            _skip("the world's turns have one ask: faulted by the other fault tests")
        for ask in asks:
            kit.check_faults(LOCKSTEP, ask)

    def test_both_schedulers_agree(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._free_running(tmp_path_factory).check_schedulers()

    def test_a_killed_run_resumes_to_the_unbroken_end_in_lockstep(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self.conformance_kit(tmp_path_factory).check_kill_and_resume(LOCKSTEP)

    def test_a_killed_run_resumes_to_the_unbroken_end_free_running(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        self._free_running(tmp_path_factory).check_kill_and_resume(FREE_RUNNING)

    def _free_running(self, tmp_path_factory: pytest.TempPathFactory) -> ConformanceKit:
        kit = self.conformance_kit(tmp_path_factory)
        if not kit.independent:
            _skip("the world is not independent: it runs in lockstep only")
        return kit


def _skip(reason: str) -> NoReturn:
    import pytest  # only where the kit runs as tests: the rest needs no pytest

    pytest.skip(reason)


__all__ = [
    "FAULTY_BACKEND",
    "FREE_RUNNING",
    "LOCKSTEP",
    "ConformanceError",
    "ConformanceKit",
    "Faults",
    "FaultyClient",
    "WorldConformance",
    "check_records",
    "check_replay",
]
