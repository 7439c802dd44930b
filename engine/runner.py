"""Build a run from its config and run it: the one place where every part is put together.

``plan_run`` checks everything that can be checked before a file is written (config, plugins,
output directory); ``execute`` builds the world, agents, policies and client and drives them.
Nothing here is global: clocks and the run's seed are passed in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec
import structlog

from agora.engine.ask_checks import checked_turns, world_asks
from agora.engine.budget import Budget
from agora.engine.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    check,
    load_run_config,
    read_toml,
    to_builtins,
)
from agora.engine.inference.build import build_client
from agora.engine.integrity import sealed_header
from agora.engine.log import LOG_NAME, LogBusyError, RunLogWriter
from agora.engine.plugins import load_plugin
from agora.engine.protocols import (
    Agent,
    LLMClient,
    Policy,
    Remembers,
    WorldParts,
    show_policies,
)
from agora.engine.record_kinds import LoggedRecords, RunRecords, declare
from agora.engine.records import (
    AgentId,
    EndpointReport,
    LogRecord,
    Resumed,
    RunEnd,
    RunHeader,
    TickEnd,
)
from agora.engine.replay import ReplayError, read_run
from agora.engine.scheduler import (
    FreeRunningScheduler,
    LockstepScheduler,
    RunStoppedError,
    TickHook,
)
from agora.engine.seeding import Seeds
from agora.engine.tick_sync import BackgroundSync
from agora.engine.turns import Pricing, RunTotals, TurnResult, TurnRunner

SUMMARY_NAME = "summary.json"
_log = structlog.get_logger("agora.run")


class OutputExistsError(ConfigError):
    """The output directory already holds a run; runs are never overwritten."""


def _already_holds_a_run(out_dir: Path) -> OutputExistsError:
    return OutputExistsError(
        f"run.out: {out_dir} already holds a run ({LOG_NAME}); runs are never "
        "overwritten: pick another --out, or `agora resume` it"
    )


class RunWriteError(OSError):
    """A run's log or summary could not be written (a full disk): one line for the user."""

    def __init__(self, message: str, errno_: int | None) -> None:
        super().__init__(errno_, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _write_error(path: Path, exc: OSError, out_dir: Path, *, started: bool = True) -> RunWriteError:
    why = exc.strerror or str(exc)
    if started:
        then = (
            "the log up to its last whole record is kept: free some space, then "
            f"`agora resume {out_dir}`"
        )
    else:
        then = "nothing was run: free some space and start it again"
    return RunWriteError(f"cannot write {path} ({why}); {then}", exc.errno)


@dataclass(frozen=True)
class PolicyPlan:
    name: str
    plugin: Any
    config: Any


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig
    resolved: dict[str, Any]
    world_plugin: Any
    world_config: Any
    agent_plugin: Any
    agent_config: Any
    policies: tuple[PolicyPlan, ...]
    out_dir: Path
    run_id: str
    # The record kinds the world and the policies declare, for the header and the writer.
    kinds: RunRecords = dataclasses.field(default_factory=RunRecords)


class RunSummary(msgspec.Struct):
    run_id: str
    status: str
    out_dir: str
    log: str
    backend: str
    model: str
    ticks: int
    decisions: int
    valid: int
    invalid: int
    errors: int
    requests: int
    tokens_in: int
    tokens_out: int
    billed_tokens: int
    cost_usd: float
    wall_s: float
    decisions_per_s: float
    final_metrics: dict[str, Any]
    reason: str | None = None
    # Each server's learnt pace: the limit it settled on, the most in flight, answers.
    endpoints: list[EndpointReport] = msgspec.field(default_factory=list)


def plan_run(
    config_path: Path,
    overrides: dict[str, Any],
    *,
    now: datetime,
    out_root: Path = Path("runs/out"),
    environ: Mapping[str, str] | None = None,
    existing_ok: bool = False,
) -> RunPlan:
    raw = apply_overrides(read_toml(config_path), overrides)
    return plan_raw(raw, now=now, out_root=out_root, environ=environ, existing_ok=existing_ok)


def plan_raw(
    raw: dict[str, Any],
    *,
    now: datetime,
    out_root: Path = Path("runs/out"),
    environ: Mapping[str, str] | None = None,
    existing_ok: bool = False,
) -> RunPlan:
    """``plan_run`` for a config already read (a notebook's dict, overrides applied).
    ``existing_ok``: ``run.out`` may hold a run (the caller decides what to do with it)."""
    parts = _resolve(raw, os.environ if environ is None else environ)
    config = parts.config
    run_id = f"{config.run.name}-seed{config.run.seed}-{now.strftime('%Y%m%d-%H%M%S')}"
    if config.run.out:
        out_dir = Path(config.run.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputExistsError(f"run.out: {out_dir} is a file, not a directory")
        if (out_dir / LOG_NAME).exists() and not existing_ok:
            raise _already_holds_a_run(out_dir)
        run_id = out_dir.name or run_id
    else:
        out_dir = out_root / config.run.name / run_id
        suffix = 2
        while out_dir.exists():
            out_dir = out_root / config.run.name / f"{run_id}-{suffix}"
            suffix += 1
        run_id = out_dir.name
    return dataclasses.replace(parts, out_dir=out_dir, run_id=run_id)


def plan_at(
    raw: dict[str, Any], out_dir: Path, run_id: str, environ: Mapping[str, str] | None = None
) -> RunPlan:
    """The plan of a run whose output directory is chosen by the caller (a sweep)."""
    parts = _resolve(raw, os.environ if environ is None else environ)
    return dataclasses.replace(parts, out_dir=out_dir, run_id=run_id)


def plan_resumed(resolved: dict[str, Any], run_dir: Path, run_id: str) -> RunPlan:
    """The plan of a run being resumed, from the resolved config its log header holds."""
    return dataclasses.replace(_resolve(resolved, os.environ), out_dir=run_dir, run_id=run_id)


def _resolve(raw: dict[str, Any], environ: Mapping[str, str]) -> RunPlan:
    """Check the config and find its plugins; the output directory is left to the caller."""
    config = load_run_config(raw, environ)
    world_plugin = load_plugin("world", str(config.world["kind"]), "world.kind")
    world_config = check(config.world, world_plugin.config_type, "world")
    agent_plugin = load_plugin("agents", str(config.agents.get("kind", "llm")), "agents.kind")
    agent_config = check(config.agents, agent_plugin.config_type, "agents")

    policies = []
    for name, section in config.policies.items():
        where = f"policies.{name}"
        if not isinstance(section, dict):
            raise ConfigError(f'{where}: expected a table, e.g. [{where}] kind = "message_board"')
        enabled = section.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{where}.enabled: expected true or false")
        if "kind" not in section:
            raise ConfigError(
                f'{where}.kind: missing; name the policy, e.g. kind = "message_board"'
            )
        plugin = load_plugin("policy", str(section["kind"]), f"{where}.kind")
        settings = {k: v for k, v in section.items() if k != "enabled"}
        policy_config = check(settings, plugin.config_type, where)
        if enabled:
            policies.append(PolicyPlan(name, plugin, policy_config))

    shared = _sharing(policies)
    if shared and getattr(world_plugin, "independent", False):
        # Known from the plugin, so a sweep's check finds it before any run starts.
        raise _shared_policies_refused(str(config.world["kind"]), shared)
    resolved = {
        "run": to_builtins(config.run),
        "inference": to_builtins(config.inference),
        "world": to_builtins(world_config),
        "agents": to_builtins(agent_config),
        "policies": {
            name: {"enabled": any(p.name == name for p in policies), **section}
            for name, section in config.policies.items()
        },
    }
    for plan in policies:
        resolved["policies"][plan.name] = {"enabled": True, **to_builtins(plan.config)}
    return RunPlan(
        config=config,
        resolved=resolved,
        world_plugin=world_plugin,
        world_config=world_config,
        agent_plugin=agent_plugin,
        agent_config=agent_config,
        policies=tuple(policies),
        out_dir=Path(),
        run_id="",
        kinds=declare(world_plugin, [(plan.name, plan.plugin) for plan in policies]),
    )


@dataclasses.dataclass
class Resumption:
    """What a stopped run's log gives back: its state at the last tick it closed, the turns
    of later ticks it already logged, and the records those turns still owe the log."""

    seeds: Seeds
    parts: WorldParts
    policies: list[Policy]
    agents: dict[AgentId, Agent]
    first_tick: int
    totals: RunTotals
    reuse: dict[tuple[int, AgentId], TurnResult]
    records: list[LogRecord]
    dropped_torn_line: bool
    last_tick: TickEnd | None = None
    # Records of the ticks it did not close that the log holds: made again, not logged again.
    logged: LoggedRecords = dataclasses.field(default_factory=LoggedRecords)
    # The record kinds the log's header declares: the resumed run logs these and no others.
    kinds: RunRecords = dataclasses.field(default_factory=RunRecords)
    # Errored decisions asked again; ``rollback``: the log's records from ``first_tick`` on
    # are superseded (``records`` then holds the reused decisions, logged again).
    reasked: int = 0
    rollback: bool = False
    # What the header recorded of the endpoints (their answer formats): asked as before.
    endpoints: dict[str, Any] = dataclasses.field(default_factory=dict)


def _header(
    plan: RunPlan,
    client: LLMClient,
    parts: WorldParts,
    now: Callable[[], datetime],
    endpoints: dict[str, Any],
) -> RunHeader:
    config = plan.config
    world_info = parts.world.describe()
    if config.inference.backend == "offline":
        world_info["offline"] = parts.offline.describe()
    return sealed_header(
        RunHeader(
            run_id=plan.run_id,
            seed=config.run.seed,
            config=plan.resolved,
            backend=client.backend,
            model=client.model,
            versions=_versions(),
            world=str(config.world["kind"]),
            world_info=world_info,
            records=plan.kinds.declarers,
            scheduler=_scheduler_name(plan.config, parts.world.independent),
            endpoints=endpoints,
            started_at=now().isoformat(timespec="seconds"),
        )
    )


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("agora", "msgspec", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


async def execute(
    plan: RunPlan,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] | None = None,
    on_tick: TickHook | None = None,
    client: LLMClient | None = None,
    on_start: Callable[[RunTotals, int], None] | None = None,
    resume: Resumption | None = None,
) -> RunSummary:
    """Run the plan to its end. ``client`` replaces the configured backend (tests inject one);
    ``resume`` carries the state rebuilt from the log of a run that stopped."""
    clock = clock or time.perf_counter
    config = plan.config
    if resume is None:
        seeds = Seeds(config.run.seed)
        parts = plan.world_plugin.build(plan.world_config, seeds)
        shared = _sharing(plan.policies)
        if parts.world.independent and shared:
            # For worlds whose plugin does not say so: known once the world is built.
            raise _shared_policies_refused(str(plan.config.world["kind"]), shared)
        policies: list[Policy] = [
            p.plugin.build(p.config, seeds, p.name, parts.world) for p in plan.policies
        ]
        show_policies(parts.world, policies)
        world_asks(parts.prompts)  # before agents are built from the prompts
        agents = plan.agent_plugin.build(
            plan.agent_config, parts.world.agent_ids(), parts.prompts, policies, config.inference
        )
        first_tick, totals = 0, RunTotals()
    else:
        seeds, parts = resume.seeds, resume.parts
        policies, agents = resume.policies, resume.agents
        first_tick, totals = resume.first_tick, resume.totals
    decided_before = totals.decisions
    world = parts.world
    asks = checked_turns(
        parts, agents, policies, client is None and config.inference.backend == "offline"
    )
    if client is None:
        client = build_client(config.inference, parts.offline, policies, seeds, os.environ)

    log_path = plan.out_dir / LOG_NAME
    started = clock()
    last_tick: list[TickEnd] = [resume.last_tick] if resume and resume.last_tick else []
    watch = ErrorWatch(config.run.max_error_rate)

    def tick_done(record: TickEnd) -> None:
        last_tick[:] = [record]
        watch.last = record
        if on_tick is not None:
            on_tick(record)

    status, reason = "completed", None
    try:
        # Probes go out before the header is written, so the header says how each server is
        # asked; a resumed run asks as its header recorded.
        endpoints = await client.prepare(resume.endpoints if resume is not None else {})
    except BaseException:
        await client.aclose()
        raise
    header = None if resume is not None else _header(plan, client, parts, now, endpoints)
    kinds = resume.kinds if resume is not None else plan.kinds
    async with _log_for(plan, header, client, kinds) as log:
        if resume is not None:
            resumed = Resumed(
                tick=first_tick,
                reused=len(resume.reuse),
                dropped_torn_line=resume.dropped_torn_line,
                started_at=now().isoformat(timespec="seconds"),
                rollback=resume.rollback,
                reasked=resume.reasked,
            )
            log.append_many([resumed, *resume.records])
        log.sync()
        inference = config.inference
        runner = TurnRunner(
            world=world,
            agents=agents,
            policies=policies,
            client=client,
            log=log,
            seeds=seeds,
            max_reasks=inference.max_reasks,
            params=dict(inference.params),
            pricing=Pricing(inference.usd_per_mtok_in, inference.usd_per_mtok_out),
            clock=clock,
            totals=totals,
            logged=resume.logged if resume is not None else LoggedRecords(),
            tick_sync=(tick_sync := BackgroundSync(log.sync)),
            asks=asks,
            offline_memory=parts.offline if isinstance(parts.offline, Remembers) else None,
        )
        budget = Budget(tokens=inference.budget_tokens, usd=inference.budget_usd)
        free = _scheduler_name(config, world.independent) == "free-running"
        scheduler_type = FreeRunningScheduler if free else LockstepScheduler
        scheduler = scheduler_type(
            runner,
            inference.concurrency,
            on_tick=tick_done,
            clock=clock,
            should_stop=lambda: watch.dead_server(runner.totals) or budget.exceeded(runner.totals),
            reuse=resume.reuse if resume is not None else {},
        )
        if on_start is not None:
            on_start(runner.totals, config.run.ticks)
        ended = False  # by itself: at its last tick, by a budget, or by a dead server
        try:
            await scheduler.run(first_tick, config.run.ticks)
            ended = True
        except RunStoppedError as stop:
            status, reason, ended = "stopped", stop.reason, True
        except asyncio.CancelledError:
            status, reason = "stopped", "interrupted"
            raise
        except Exception as exc:
            unwritable = _oserror_in(exc)
            if unwritable is not None:  # turns never raise: it is the log that failed
                why = unwritable.strerror or str(unwritable)
                status, reason = "failed", f"cannot write {log_path}: {why}"
                raise _write_error(log_path, unwritable, plan.out_dir) from None
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            await client.aclose()
            unwritten: list[RunWriteError] = []
            try:
                tick_sync.drain()
            except OSError as exc:
                unwritten.append(_write_error(log_path, exc, plan.out_dir))
            totals = runner.totals
            wall = clock() - started
            ticks_done = last_tick[0].tick + 1 if last_tick else first_tick
            if ended and watch.over(totals):
                status, reason = "failed", watch.failure(totals, log_path, config.run.ticks)
            end = RunEnd(
                ticks=ticks_done,
                decisions=totals.decisions,
                invalid=totals.invalid,
                errors=totals.errors,
                status=status,  # type: ignore[arg-type]
                reason=reason,
                tokens_in=totals.tokens_in,
                tokens_out=totals.tokens_out,
                finished_at=now().isoformat(timespec="seconds"),
                wall_s=round(wall, 6),
                cost_usd=totals.cost_usd,
            )
            if not unwritten:
                try:
                    log.append(end)
                except OSError as exc:
                    unwritten.append(_write_error(log_path, exc, plan.out_dir))
            summary = RunSummary(
                run_id=plan.run_id,
                status=status,
                out_dir=str(plan.out_dir),
                log=str(log_path),
                backend=client.backend,
                model=client.model,
                ticks=ticks_done,
                decisions=totals.decisions,
                valid=totals.valid,
                invalid=totals.invalid,
                errors=totals.errors,
                requests=totals.requests,
                tokens_in=totals.tokens_in,
                tokens_out=totals.tokens_out,
                billed_tokens=totals.billed_tokens,
                cost_usd=round(totals.cost_usd, 6),
                wall_s=round(wall, 3),
                # This session's pace: decisions a resumed run took from its log are not counted.
                decisions_per_s=(
                    round((totals.decisions - decided_before) / wall, 1) if wall > 0 else 0.0
                ),
                final_metrics=last_tick[0].metrics if last_tick else {},
                endpoints=client.reports(),
                reason=reason,
            )
            summary_path = plan.out_dir / SUMMARY_NAME
            try:
                write_summary(summary_path, summary)
            except OSError as exc:
                unwritten.append(_write_error(summary_path, exc, plan.out_dir))
            if unwritten and sys.exc_info()[1] is None:
                raise unwritten[0]
    return summary


def _oserror_in(exc: BaseException) -> OSError | None:
    """The OSError that ``exc`` is, or holds (a tick's task group gathers its workers' errors)."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _oserror_in(inner)
            if found is not None:
                return found
    return None


def write_summary(path: Path, summary: RunSummary) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(summary)))


@asynccontextmanager
async def _log_for(
    plan: RunPlan, header: RunHeader | None, client: LLMClient, kinds: RunRecords
) -> AsyncIterator[RunLogWriter]:
    """The run's log, opened (a new one when ``header`` is given) and closed; a directory
    that another run took in the meantime is refused like one found at plan time."""
    log_path = plan.out_dir / LOG_NAME
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        log = RunLogWriter(log_path, append=header is None, header=header, records=kinds)
    except BaseException as exc:
        await client.aclose()  # the run does not start
        if isinstance(exc, FileExistsError):
            raise _already_holds_a_run(plan.out_dir) from None
        if isinstance(exc, OSError) and not isinstance(exc, LogBusyError):
            raise _write_error(log_path, exc, plan.out_dir, started=header is None) from None
        raise
    try:
        yield log
    finally:
        try:
            log.close()
        except OSError as exc:
            if sys.exc_info()[1] is None:
                raise _write_error(log_path, exc, plan.out_dir) from None


_AFTER_ATTEMPTS = re.compile(r" \(after \d+ attempts\)$")


@dataclass
class ErrorWatch:
    """Fails a run whose decisions end in errors (no answer from the provider, after every
    retry) more often than ``run.max_error_rate``, and stops one early when a whole tick
    failed while the share is over it: a dead server is not asked for the rest of the run."""

    max_rate: float
    last: TickEnd | None = None
    stopped_after: int | None = None

    def over(self, totals: RunTotals) -> bool:
        return totals.decisions > 0 and totals.errors > self.max_rate * totals.decisions

    def dead_server(self, totals: RunTotals) -> str | None:
        last = self.last
        if last is None or not last.decisions or last.errors < last.decisions:
            return None
        if not self.over(totals):
            return None
        self.stopped_after = last.tick
        return f"every decision of tick {last.tick} ended in an error"

    def failure(self, totals: RunTotals, log_path: Path, ticks: int) -> str:
        share = f"{totals.errors} of {totals.decisions} decisions ended in an error"
        common = _most_common_error(log_path)
        if common is not None:
            text, count = common
            share += f" (most often {text!r}, {count} times)"
        share += f", over run.max_error_rate {self.max_rate:g}"
        if self.stopped_after is not None and self.stopped_after + 1 < ticks:
            share += (
                f"; stopped after tick {self.stopped_after} of {ticks}, in which every "
                "decision failed"
            )
        return share


def _most_common_error(log_path: Path) -> tuple[str, int] | None:
    """The most common reason among the run's errored decisions, with its count."""
    try:
        logged = read_run(log_path)
    except ReplayError:
        return None
    reasons: Counter[str] = Counter(
        _AFTER_ATTEMPTS.sub("", decision.error)
        for decisions in logged.decisions.values()
        for decision in decisions
        if decision.error is not None
    )
    return reasons.most_common(1)[0] if reasons else None


def _scheduler_name(config: RunConfig, independent: bool) -> str:
    return "free-running" if independent and config.run.scheduler == "auto" else "lockstep"


def _sharing(policies: Sequence[PolicyPlan]) -> list[PolicyPlan]:
    """The policies that carry what one agent does to what another sees (a board)."""
    for plan in policies:
        # An outside plugin written before the flag existed gets a fix, not an AttributeError.
        if not isinstance(getattr(plan.plugin, "shares_state", None), bool):
            raise ConfigError(
                f"policies.{plan.name}.kind: the policy plugin does not say whether it shares "
                "state between agents; give it `shares_state = True` (a board) or False (a "
                "text each agent sees alone)"
            )
    return [p for p in policies if p.plugin.shares_state]


def _shared_policies_refused(world: str, policies: Sequence[PolicyPlan]) -> ConfigError:
    names = ", ".join(p.name for p in policies)
    return ConfigError(
        f"policies.{policies[0].name}: {world} runs its agents independently, so shared "
        f"policies ({names}) cannot apply; disable them"
    )
