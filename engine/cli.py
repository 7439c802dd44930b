"""``agora``: the command line. Config mistakes print one line and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import structlog

from agora.engine import __version__
from agora.engine.commands import installed_commands, load_command
from agora.engine.config import FLAG_FIELDS, ConfigError, explain, parse_assignment
from agora.engine.inference.mock_server import MockServer, MockSettings, serve
from agora.engine.integrity import CHECKS_FORMAT
from agora.engine.log import LOG_NAME, LogBusyError, LogFormatError
from agora.engine.pictures import write_frames
from agora.engine.plugins import available, load_plugin
from agora.engine.progress import ProgressBar
from agora.engine.records import TickEnd
from agora.engine.replay import Replayer, ReplayError, check_decisions, read_run
from agora.engine.report import write_report
from agora.engine.resume import ResumeError, prepare_resume
from agora.engine.run_state import config_change, logged_config, state_of
from agora.engine.runner import SUMMARY_NAME, Resumption, RunPlan, RunSummary, execute, plan_run
from agora.engine.sweep import (
    MANIFEST_NAME,
    Manifest,
    RunOutcome,
    SweepRun,
    check_unchanged,
    is_sweep_dir,
    plan_sweep,
    run_sweep,
    summary_line,
)
from agora.engine.sweep_report import write_sweep_report
from agora.engine.tick_view import render_tick

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


_BUILT_IN = frozenset({"run", "sweep", "check", "report", "resume", "replay", "mock-server"})


def _plugged(name: str, load: Callable[[], Any], argv: list[str]) -> int:
    """A plug-in's command (``agora.commands``), loaded now that it is asked for."""
    command = load_command(name, load)
    parser = argparse.ArgumentParser(prog=f"agora {name}", description=command.help)
    command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return command.run(args)
    except ConfigError as exc:
        print(f"agora {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parser(plugged: Mapping[str, Any] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agora", description="Run LLM-agent societies.")
    parser.add_argument("--version", action="version", version=f"agora {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run an experiment from a config file")
    _config_arguments(run)
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument(
        "--continue",
        dest="continue_run",
        action="store_true",
        help="when --out already holds this config's run: keep it if it completed, else "
        "resume it (errored decisions asked again); a run of another config is refused",
    )

    sweep = commands.add_parser(
        "sweep", help="run an experiment's models × conditions × seeds, each a resumable run"
    )
    _config_arguments(sweep, sweep=True)
    sweep.add_argument("--parallel", type=int, help="runs in flight at once (sweep.parallel)")
    sweep.add_argument(
        "--dry-run", action="store_true", help="check every run's config and list the runs"
    )

    check = commands.add_parser("check", help="check a config without running it")
    _config_arguments(check)

    report = commands.add_parser("report", help="summarise a run as markdown with figures")
    report.add_argument("run_dir", type=Path, help="the run's directory")

    resume = commands.add_parser("resume", help="continue a run that stopped, to its end")
    resume.add_argument("run_dir", type=Path, help="the run's directory")
    resume.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    resume.add_argument(
        "--retry-errors",
        action="store_true",
        help="ask again every decision that ended in an error (and what followed from it), "
        "also in a run that completed",
    )

    replay = commands.add_parser(
        "replay", help="rebuild a run from its log, check every digest, show a tick"
    )
    replay.add_argument("run_dir", type=Path, help="a run directory (or its log.jsonl)")
    show = replay.add_mutually_exclusive_group()
    show.add_argument("--tick", type=int, help="show the state at the end of this tick")
    show.add_argument("--play", action="store_true", help="step through the ticks one by one")
    show.add_argument("--frames", type=Path, metavar="DIR", help="write a PNG per tick and run.gif")
    replay.add_argument("--agent", type=int, action="append", help="only this agent's decisions")
    replay.add_argument(
        "--delay", type=float, default=0.5, help="seconds between ticks with --play (0: Enter)"
    )

    mock = commands.add_parser(
        "mock-server", help="serve an OpenAI-compatible mock model with latency and faults"
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    mock.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    mock.add_argument("--model", default="mock", help="model name it reports")
    mock.add_argument("--latency-ms", type=float, default=0.0, help="median latency per request")
    mock.add_argument("--latency-sigma", type=float, default=0.0, help="lognormal sigma; 0 = fixed")
    mock.add_argument(
        "--max-concurrency", type=int, default=0, help="requests served at once (0: no cap)"
    )
    for fault, text in [
        ("429", "answer 429 with Retry-After"),
        ("500", "answer 500"),
        ("timeout", "hang for --hang-s"),
        ("malformed", "send a malformed JSON body"),
        ("drop", "drop the connection"),
        ("garbage", "answer in prose instead of the format asked (an invalid answer)"),
    ]:
        mock.add_argument(
            f"--rate-{fault}", type=float, default=0.0, help=f"fraction of requests to {text}"
        )
    mock.add_argument(
        "--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429"
    )
    mock.add_argument("--hang-s", type=float, default=30.0, help="how long a 'timeout' fault hangs")
    mock.add_argument(
        "--formats",
        choices=["all", "json_object", "none"],
        default="all",
        help="response formats it takes: all (vLLM), json_object (llama-cpp-python), none",
    )
    mock.add_argument("--seed", type=int, default=0, help="seed of the fault and latency draws")
    for name in sorted(plugged or {}):
        if name not in _BUILT_IN:
            # Listed without loading it: its own --help says what it takes.
            commands.add_parser(name, help=f"a plug-in's command (agora {name} --help)")
    return parser


def _config_arguments(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    if sweep:
        parser.add_argument("config", type=Path, help="a TOML sweep config (examples in runs/)")
        parser.add_argument("-q", "--quiet", action="store_true", help="no line per run")
    else:
        parser.add_argument(
            "config", type=Path, help="a TOML run config, e.g. runs/schelling_city.toml"
        )
    parser.add_argument("--ticks", type=int, help="number of ticks (run.ticks)")
    parser.add_argument("--agents", type=int, help="number of agents (world.agents)")
    if sweep:
        parser.add_argument("--out", help="the sweep's directory (sweep.out)")
    else:
        parser.add_argument("--seed", type=int, help="the run's seed (run.seed)")
        parser.add_argument("--out", help="output directory; must not hold a run (run.out)")
    parser.add_argument("--backend", help="inference backend (inference.backend)")
    parser.add_argument("--model", help="model name (inference.model)")
    parser.add_argument(
        "--concurrency", type=int, help="decisions in flight (inference.concurrency)"
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        metavar="URL",
        help="an OpenAI-compatible server's base URL, repeatable (inference.endpoints)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set any config field, e.g. --set world.m=0.4 (repeatable)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for assignment in args.set:
        key, value = parse_assignment(assignment)
        overrides[key] = value
    for flag, path in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[path] = value
    return overrides


class _StderrLogger:
    """Writes to whatever ``sys.stderr`` is when a line is logged, not when logging was set
    up: a process that replaced its stderr since (a test harness, a daemon) still logs."""

    def __init__(self, *args: Any) -> None:
        pass

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _configure_logging(quiet: bool) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            # Plain tracebacks: a rich one shows local variables, and a key can be among them.
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.WARNING if quiet else logging.INFO
        ),
        logger_factory=_StderrLogger,
        cache_logger_on_first_use=True,
    )


def _tick_logger() -> Any:
    log = structlog.get_logger("agora")

    def on_tick(record: TickEnd) -> None:
        scalars = {k: v for k, v in record.metrics.items() if isinstance(v, int | float)}
        shown = dict(list(scalars.items())[:4])
        log.info(
            "tick",
            tick=record.tick,
            decisions=record.decisions,
            invalid=record.invalid,
            errors=record.errors,
            **shown,
        )

    return on_tick


def _print_summary(summary: RunSummary) -> None:
    print(
        f"agora: run {summary.run_id} {summary.status}: {summary.ticks} ticks, "
        f"{summary.decisions} decisions ({summary.invalid} invalid, {summary.errors} errors) "
        f"in {summary.wall_s:.2f} s, backend {summary.backend}"
    )
    if summary.reason:
        print(f"  reason:  {summary.reason}")
    if summary.backend != "offline":
        print(f"  usage:   {summary.billed_tokens} billed tokens, ${summary.cost_usd:.4f}")
    print(f"  log:     {summary.log}")
    print(f"  summary: {Path(summary.out_dir) / SUMMARY_NAME}")
    scalars = {k: v for k, v in summary.final_metrics.items() if isinstance(v, int | float)}
    if scalars:
        print("  final:   " + "  ".join(f"{k} {v:g}" for k, v in scalars.items()))


async def _run_until_signalled(
    plan: RunPlan, quiet: bool, resume: Resumption | None = None
) -> RunSummary:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        # SIGTERM (docker stop, a cluster's scheduler) ends the run like Ctrl-C: cleanly.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    if quiet or not sys.stderr.isatty():
        return await execute(plan, on_tick=None if quiet else _tick_logger(), resume=resume)
    progress = ProgressBar(sys.stderr)
    refresher = asyncio.create_task(progress.keep_fresh())
    try:
        return await execute(plan, on_tick=progress.on_tick, on_start=progress.start, resume=resume)
    finally:
        refresher.cancel()
        progress.close()


def _event_loop_runner(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # uvloop is not built for every platform; asyncio's loop still works
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _mock_server(args: argparse.Namespace) -> int:
    try:
        settings = msgspec.convert(
            {
                "model": args.model,
                "latency_ms": args.latency_ms,
                "latency_sigma": args.latency_sigma,
                "max_concurrency": args.max_concurrency,
                "rate_429": args.rate_429,
                "retry_after_s": args.retry_after,
                "rate_500": args.rate_500,
                "rate_timeout": args.rate_timeout,
                "hang_s": args.hang_s,
                "rate_malformed": args.rate_malformed,
                "rate_drop": args.rate_drop,
                "rate_garbage": args.rate_garbage,
                "seed": args.seed,
                "formats": args.formats,
            },
            MockSettings,
        )
    except msgspec.ValidationError as exc:
        print(f"agora mock-server: {explain(exc, MockSettings, '')}", file=sys.stderr)
        return EXIT_USAGE
    responders = []
    for name in available("world"):
        plugin = load_plugin("world", name, "world")
        if hasattr(plugin, "text_responder"):
            responders.append(plugin.text_responder)
    server = MockServer(settings, responders)
    try:
        _event_loop_runner(serve(args.host, args.port, server))
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"agora mock-server: cannot listen on {where} ({exc.strerror})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    try:
        plan, resumption = prepare_resume(args.run_dir, retry_errors=args.retry_errors)
    except (ReplayError, ResumeError) as exc:
        print(f"agora resume: {exc}", file=sys.stderr)
        return EXIT_USAGE
    asked = f"{resumption.reasked} errored decisions asked again; " if resumption.reasked else ""
    print(
        f"agora resume: {plan.run_id}: state rebuilt to tick {resumption.first_tick - 1}, "
        f"{len(resumption.reuse)} logged decisions reused; {asked}going on from tick "
        f"{resumption.first_tick}",
        file=sys.stderr,
    )
    return _run_to_end(plan, args.quiet, resumption)


def _replay(args: argparse.Namespace) -> int:
    try:
        logged = read_run(args.run_dir)
        full = args.tick is None and args.frames is None and not args.play
        if full:
            check_decisions(logged)  # an edited decision is named by its own line
        replayer = Replayer(logged)
        last = logged.last_tick
        if last < 0 and (args.tick is not None or args.frames is not None or args.play):
            print(f"agora replay: {logged.path}: no tick was closed yet", file=sys.stderr)
            return EXIT_USAGE
        if args.tick is not None and not 0 <= args.tick <= last:
            print(
                f"agora replay: --tick {args.tick}: the log holds ticks 0 to {last}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        target = last if args.tick is None else args.tick
        if args.tick is not None or (args.frames is None and not args.play):
            replayer.advance_to(target)
    except ReplayError as exc:
        print(f"agora replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.frames is not None:
        frames = write_frames(replayer, args.frames, last_tick=target)
        print(f"agora replay: {len(frames)} frames and run.gif written to {args.frames}")
        return EXIT_OK
    if args.play:
        return _play(replayer, target, args.delay, set(args.agent or []))
    if args.tick is None:
        status = logged.end.status if logged.end else "unfinished (no end record)"
        checked = (
            "every decision's check and " if logged.header.format >= CHECKS_FORMAT else "every "
        )
        print(
            f"agora replay: {logged.path}: {last + 1} ticks replayed from the log alone, "
            f"{checked}state digest matches; run {status}"
        )
        return EXIT_OK
    print(render_tick(replayer, args.tick, set(args.agent or [])))
    return EXIT_OK


def _play(replayer: Replayer, last: int, delay: float, agents: set[int]) -> int:
    interactive = delay <= 0 and sys.stdin.isatty()
    try:
        while replayer.tick < last:
            replayer.step()
            print(render_tick(replayer, replayer.tick, agents or {-1}), flush=True)
            print("-" * 72, flush=True)
            if interactive:
                input("Enter for the next tick, Ctrl-C to stop ")
            elif delay > 0:
                time.sleep(delay)
    except ReplayError as exc:
        print(f"agora replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugged = installed_commands()
    if argv and argv[0] in plugged and argv[0] not in _BUILT_IN:
        return _plugged(argv[0], plugged[argv[0]], argv[1:])
    args = _parser(plugged).parse_args(argv)
    if args.command == "mock-server":
        return _mock_server(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "resume":
        return _resume(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "report":
        try:
            if is_sweep_dir(args.run_dir):
                path = write_sweep_report(args.run_dir)
            else:
                path = write_report(args.run_dir)
        except (ReplayError, LogFormatError, ConfigError, OSError) as exc:
            print(f"agora report: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"agora report: written to {path}")
        return EXIT_OK
    try:
        plan = plan_run(
            args.config,
            _overrides(args),
            now=datetime.now(UTC),
            existing_ok=args.command == "run" and args.continue_run,
        )
    except ConfigError as exc:
        print(f"agora: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        print(f"agora: {args.config} is valid; it would write to {plan.out_dir}")
        return EXIT_OK
    if args.command == "run" and args.continue_run:
        return _run_or_continue(plan, args.quiet)
    return _run_to_end(plan, args.quiet)


def _run_or_continue(plan: RunPlan, quiet: bool) -> int:
    """``agora run --continue``: what a rerun of a sweep does, for one run (a Makefile
    target that runs several in a row can be run again after any of them stopped)."""
    state = state_of(plan.out_dir)
    if state.state == "new":
        return _run_to_end(plan, quiet)
    if logged_config(plan.out_dir) is None:
        print(
            f"agora: run.out: {plan.out_dir / LOG_NAME}: its header cannot be read (the run "
            "there is broken); remove it or pick another --out",
            file=sys.stderr,
        )
        return EXIT_USAGE
    change = config_change(plan.out_dir, plan.resolved)
    if change is not None:
        print(
            f"agora: run.out: {plan.out_dir} holds a run made with another config ({change}); "
            "pick another --out, or remove that run",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if state.state == "completed":
        print(f"agora: {plan.out_dir}: completed earlier; kept as it is", file=sys.stderr)
        return EXIT_OK
    if state.state == "stopped":
        print(
            f"agora: {plan.out_dir}: stopped by its budget ({state.detail}); kept as it is "
            f"(go on: agora resume {plan.out_dir})",
            file=sys.stderr,
        )
        return EXIT_OK
    try:
        resumed, resumption = prepare_resume(plan.out_dir, retry_errors=True)
    except (ReplayError, ResumeError) as exc:
        print(f"agora: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"agora: {plan.out_dir}: {state.state}; resumed from tick {resumption.first_tick}",
        file=sys.stderr,
    )
    return _run_to_end(resumed, quiet, resumption)


def _sweep(args: argparse.Namespace) -> int:
    try:
        overrides = _overrides(args)
        overrides.pop("run.out", None)
        plan = plan_sweep(args.config, overrides, out=args.out)
        check_unchanged(plan)
        if args.parallel is not None:
            if args.parallel < 1:
                raise ConfigError("--parallel: expected a whole number ≥ 1")
            plan = dataclasses.replace(
                plan, section=msgspec.structs.replace(plan.section, parallel=args.parallel)
            )
    except ConfigError as exc:
        print(f"agora sweep: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    section = plan.section
    print(
        f"agora sweep: {plan.name}: {len(section.models)} models × {len(section.conditions)} "
        f"conditions × {len(section.seeds)} seeds = {len(plan.runs)} runs in {plan.out_dir}",
        file=sys.stderr,
    )
    if args.dry_run:
        for run in plan.runs:
            print(f"  {run.label}: {state_of(run.plan.out_dir).state} -> {run.plan.out_dir}")
        return EXIT_OK
    _configure_logging(quiet=True)

    def on_run_done(index: int, total: int, run: SweepRun, outcome: RunOutcome) -> None:
        if not args.quiet:
            print(f"agora sweep: {summary_line(index, total, run, outcome)}", file=sys.stderr)

    async def go() -> Manifest:
        task = asyncio.current_task()
        if task is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run_sweep(plan, on_run_done=on_run_done)

    try:
        manifest = _event_loop_runner(go())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(
            "agora sweep: interrupted; run the same command again to finish (completed runs "
            f"are skipped, interrupted ones resumed): agora {shlex.join(sys.argv[1:])}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"agora sweep: {exc}", file=sys.stderr)
        return EXIT_FAILED
    failed = [r for r in manifest.runs if r.status in ("failed", "stopped", "errors")]
    print(
        f"agora sweep: {plan.name}: {len(manifest.runs) - len(failed)} of {len(manifest.runs)} "
        f"runs done; manifest {plan.out_dir / MANIFEST_NAME}; "
        f"report with: agora report {plan.out_dir}"
    )
    for outcome in failed:
        print(
            f"agora sweep: {outcome.model}/{outcome.condition}/seed{outcome.seed} "
            f"{outcome.status}: {outcome.detail}",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed else EXIT_OK


def _run_to_end(plan: RunPlan, quiet: bool, resume: Resumption | None = None) -> int:
    _configure_logging(quiet)
    try:
        summary = _event_loop_runner(_run_until_signalled(plan, quiet, resume))
    except ConfigError as exc:  # found while building, before anything was written
        print(f"agora: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(
            f"agora: interrupted; the log so far is in {plan.out_dir} "
            f"(continue with: agora resume {plan.out_dir})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except LogBusyError as exc:
        print(f"agora: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"agora: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        _print_summary(summary)
    except BrokenPipeError:  # `agora run ... | head`: the run is done, the reader left early
        sys.stderr.close()
        return EXIT_FAILED if summary.status == "failed" else EXIT_OK
    if summary.status == "failed":
        print(
            f"agora: run {summary.run_id} failed: {summary.reason}; fix the cause (the server, "
            f"its address, the key), then `agora resume {summary.out_dir} --retry-errors`",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if summary.errors:
        print(
            f"agora: {summary.errors} of {summary.decisions} decisions ended in an error (those "
            f"agents did not act); ask them again: `agora resume {summary.out_dir} "
            "--retry-errors`",
            file=sys.stderr,
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
