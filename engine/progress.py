"""A live progress bar for a terminal: tick, decisions/s, in flight, tokens, cost, retries, invalid.

It reads the run's totals on a timer instead of being told about every decision, so it costs the
hot path nothing. The CLI shows it only when stderr is a terminal; elsewhere the run logs one
line per tick instead.
"""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from agora.engine.records import TickEnd
from agora.engine.turns import RunTotals


def describe(totals: RunTotals, elapsed_s: float) -> str:
    rate = totals.decisions / elapsed_s if elapsed_s > 0 else 0.0
    invalid = 100.0 * totals.invalid / totals.decisions if totals.decisions else 0.0
    retries = totals.retries
    tokens = totals.tokens_in + totals.tokens_out
    return (
        f"{totals.decisions} decisions, {rate:,.0f}/s, {totals.in_flight} in flight, "
        f"{_short(tokens)} tokens, ${totals.cost_usd:.2f}, {retries} retries, "
        f"{invalid:.1f}% invalid, {totals.errors} errors"
    )


def _short(count: int) -> str:
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 10_000:
        return f"{count / 1_000:.0f}k"
    return str(count)


class ProgressBar:
    def __init__(self, stream: TextIO, *, interval_s: float = 0.5) -> None:
        self._interval_s = interval_s
        self._progress = Progress(
            TextColumn("tick"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
            console=Console(file=stream),
        )
        self._task: TaskID | None = None
        self._totals: RunTotals | None = None
        self._started = time.monotonic()

    def start(self, totals: RunTotals, ticks: int) -> None:
        self._totals = totals
        self._started = time.monotonic()
        self._task = self._progress.add_task("run", total=ticks, stats="")
        self._progress.start()

    def on_tick(self, record: TickEnd) -> None:
        if self._task is not None:
            self._progress.advance(self._task)
            self.refresh()

    def refresh(self) -> None:
        if self._task is not None and self._totals is not None:
            stats = describe(self._totals, time.monotonic() - self._started)
            self._progress.update(self._task, stats=stats)

    async def keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.refresh()

    def close(self) -> None:
        self.refresh()
        self._progress.stop()
