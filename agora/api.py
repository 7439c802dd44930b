"""The notebook API: run a config to its end, then read or replay what it logged.

``run`` works from a plain script and from a notebook cell alike: where an event loop is
already running (Jupyter), the run gets its own loop in a worker thread. ``arun`` is the same
run for code that is itself async.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agora.engine.config import ConfigError, apply_overrides
from agora.engine.frames import RunFrames, load_run
from agora.engine.protocols import LLMClient
from agora.engine.replay import Replayer, ReplayError, read_run
from agora.engine.runner import RunPlan, RunSummary, execute, plan_raw, plan_run

Config = str | os.PathLike[str] | Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    """A finished run: its directory and summary; ``frames()`` and ``replay()`` read its log."""

    path: Path
    summary: RunSummary

    def frames(self) -> RunFrames:
        """The run's log as polars DataFrames (``agora.load_run(run.path)``)."""
        return load_run(self.path)

    def replay(self, tick: int | None = None) -> Replayer:
        """The run's state rebuilt at the end of ``tick`` (default: its last tick)."""
        return replay(self.path, tick)


def run(
    config: Config,
    *,
    overrides: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    ticks: int | None = None,
    client: LLMClient | None = None,
) -> Run:
    """Run ``config`` (a TOML run config's path, or a dict of the same shape) to its end.

    ``overrides`` sets dotted fields (``{"policies.board.enabled": False}``) as ``--set`` does;
    ``out``, ``seed`` and ``ticks`` set ``run.out``, ``run.seed`` and ``run.ticks``; ``client``
    replaces the configured backend. A config mistake raises ``ConfigError`` (one line).
    """
    plan = _plan(config, overrides, out, seed, ticks)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_execute(plan, client))
    # A loop is running in this thread (a notebook): the run gets a thread and a loop of its own.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="agora-run") as pool:
        return pool.submit(lambda: asyncio.run(_execute(plan, client))).result()


async def arun(
    config: Config,
    *,
    overrides: Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    ticks: int | None = None,
    client: LLMClient | None = None,
) -> Run:
    """``run``, awaited on the running loop."""
    plan = _plan(config, overrides, out, seed, ticks)
    return await _execute(plan, client)


def replay(path: str | os.PathLike[str], tick: int | None = None) -> Replayer:
    """A run rebuilt from its log alone to the end of ``tick`` (default: the last logged
    tick), every digest on the way checked: inspect ``.world``, ``.policies``, ``.agents``."""
    logged = read_run(Path(path))
    last = logged.last_tick
    if last < 0:
        raise ReplayError(f"{logged.path}: no tick was closed yet")
    target = last if tick is None else tick
    if not 0 <= target <= last:
        raise ReplayError(f"tick {tick}: the log of {logged.path} holds ticks 0 to {last}")
    replayer = Replayer(logged)
    replayer.advance_to(target)
    return replayer


async def _execute(plan: RunPlan, client: LLMClient | None) -> Run:
    summary = await execute(plan, client=client)
    return Run(path=plan.out_dir, summary=summary)


def _plan(
    config: Config,
    overrides: Mapping[str, Any] | None,
    out: str | os.PathLike[str] | None,
    seed: int | None,
    ticks: int | None,
) -> RunPlan:
    changes: dict[str, Any] = dict(overrides or {})
    if out is not None:
        changes["run.out"] = os.fspath(out)
    if seed is not None:
        changes["run.seed"] = seed
    if ticks is not None:
        changes["run.ticks"] = ticks
    now = datetime.now(UTC)
    if isinstance(config, str | os.PathLike):
        return plan_run(Path(config), changes, now=now)
    if not isinstance(config, Mapping):
        raise TypeError(
            f"config: expected a TOML file's path or a dict, not {type(config).__name__}"
        )
    return plan_raw(apply_overrides(dict(config), changes), now=now)


__all__ = ["ConfigError", "Run", "arun", "replay", "run"]
