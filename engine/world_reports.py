"""What a world may add to its reports, one optional capability per protocol.

The engine's reports and pictures are world-agnostic; a world plugin (or its prompts, for
``RendersState``) that implements one of these protocols adds its own drawing, its own words and
its own choice of metrics. The engine checks ``isinstance(plugin, Draws)`` and so on, and falls
back to neutral wording when a world says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# The engine's own wording when a world gives none.
DEFAULT_LAST_TICKS = "last-ticks mean"


@runtime_checkable
class Draws(Protocol):
    """A world plugin that can draw its state on a matplotlib axes (frames, run reports)."""

    def draw(self, world: Any, ax: Any) -> None: ...


@runtime_checkable
class ReportsMetrics(Protocol):
    """A world plugin that names the scalar tick metrics a sweep report draws and tables."""

    @property
    def report_metrics(self) -> Sequence[str]: ...


@runtime_checkable
class HasCodebook(Protocol):
    """A world plugin with a codebook a sweep report codes the reasonings with."""

    @property
    def codebook_path(self) -> Path: ...


@runtime_checkable
class SweepSections(Protocol):
    """A world plugin that adds its own markdown sections to a sweep report."""

    def sweep_sections(self, runs: Sequence[Any], analysis: Any, out: Path) -> list[str]: ...


@runtime_checkable
class RunSections(Protocol):
    """A world plugin that adds its own markdown sections to one run's report (figures it
    draws go into ``out``, the report's directory)."""

    def run_sections(self, frames: Any, run_dir: Path, out: Path) -> list[str]: ...


@runtime_checkable
class RendersState(Protocol):
    """World prompts that can write the whole current state as text (``agora replay``)."""

    def render_state(self) -> str: ...


@runtime_checkable
class LabelsReport(Protocol):
    """A world plugin's words for its reports.

    ``table_axes(name)``: the (x, y) axis labels of the square tick table ``name`` (a behaviour
    matrix), or None for plain "column"/"row". ``picture_metrics``: the scalar metrics a frame's
    title shows. ``last_ticks_label``: what the mean over a run's last ticks is called (e.g.
    "equilibrium")."""

    def table_axes(self, name: str) -> tuple[str, str] | None: ...

    @property
    def picture_metrics(self) -> Sequence[str]: ...

    @property
    def last_ticks_label(self) -> str: ...


@runtime_checkable
class NamesTicks(Protocol):
    """A world plugin whose ticks are something of its own (a day, a round): what a frame's
    title and a report call ``tick`` (e.g. "day 5" for tick 4)."""

    def tick_name(self, tick: int) -> str: ...


def tick_name(plugin: Any, tick: int) -> str:
    return plugin.tick_name(tick) if isinstance(plugin, NamesTicks) else f"tick {tick}"


def table_axes(plugin: Any, name: str) -> tuple[str, str]:
    axes = plugin.table_axes(name) if isinstance(plugin, LabelsReport) else None
    return axes if axes is not None else ("column", "row")


def picture_metrics(plugin: Any) -> Sequence[str] | None:
    """The metrics a frame's title shows; None: every scalar metric."""
    return plugin.picture_metrics if isinstance(plugin, LabelsReport) else None


def last_ticks_label(plugin: Any) -> str:
    return plugin.last_ticks_label if isinstance(plugin, LabelsReport) else DEFAULT_LAST_TICKS
