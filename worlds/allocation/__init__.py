"""Allocation games with minimal-pair stances (issue 16; ``../shared/specs/altruism_mechanism.md``):
the Dictator Game and its siblings sharing the same machinery (ultimatum proposer, trust
trustor and trustee, public goods; third-party punishment is FairMindSim's world), each a
one-shot choice of a whole number, asked of agents whose prompts differ only in one stance
sentence (generous / selfish / neutral, a data file).

``world.py`` holds the world, its words and its offline stand-in, ``texts.py`` reads the
games' and stances' texts (``games.toml``, ``stances.toml``), ``analysis.py`` the
distributions per stance, the minimal pair's shift and Spearman's correlation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from agora.engine.config import ConfigError
from agora.engine.protocols import WorldParts
from agora.engine.records import LogRecord
from agora.engine.seeding import Seeds
from agora.worlds.allocation import analysis
from agora.worlds.allocation.texts import load_texts
from agora.worlds.allocation.world import (
    Allocation,
    AllocationConfig,
    AllocationPrompts,
    AllocationRecord,
    AllocationWorld,
    OfflineAllocators,
)


class AllocationPlugin:
    name = "allocation"
    independent = True
    config_type = AllocationConfig
    action_type = Allocation
    record_types: tuple[type[LogRecord], ...] = (AllocationRecord,)
    report_metrics = ("answered",)

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        settings: AllocationConfig = config
        texts = load_texts(settings.games, settings.stances_file)
        try:
            game = texts.game(settings.game)
        except KeyError:
            known = ", ".join(g.key for g in texts.games)
            raise ConfigError(
                f"world.game: {settings.game!r} is not a game of {texts.source}; use one of {known}"
            ) from None
        unknown = [s for s in settings.stances if s not in texts.stances]
        if unknown or not settings.stances:
            raise ConfigError(
                f"world.stances: {unknown[0] if unknown else 'empty'!r} is not a stance of "
                f"{texts.source}; use some of {', '.join(texts.stances)}"
            )
        if len(set(settings.stances)) != len(settings.stances):
            raise ConfigError("world.stances: a stance is listed twice; list each once")
        if settings.sent is not None and settings.sent > settings.endowment:
            raise ConfigError(
                f"world.sent: {settings.sent} is more than the endowment of "
                f"{settings.endowment}; send at most the endowment"
            )
        world = AllocationWorld(settings, texts, game)
        if world.maximum < 1:
            raise ConfigError(
                f"world: the {game.key} game leaves nothing to decide (its maximum is 0); "
                "raise world.sent or world.multiplier"
            )
        return WorldParts(
            world=world,
            prompts=AllocationPrompts(world),
            offline=OfflineAllocators(world, settings.offline),
        )

    def run_sections(self, frames: Any, run_dir: Path, out: Path) -> list[str]:
        return ["\n".join(stance_section(frames, out))]


def stance_section(frames: Any, out: Path) -> list[str]:
    info = frames.header.get("world_info", {})
    stances = list(info.get("stances", []))
    allocations = frames.of("allocation")
    ticks = frames.of("tick").height
    per_stance = int(info.get("agents", 0)) // max(len(stances), 1)
    summaries = analysis.by_stance(allocations, stances, per_stance * ticks)
    backend = str(frames.header.get("config", {}).get("inference", {}).get("backend", "?"))
    source = (
        "Answers from the **offline allocators** (a Beta draw around each stance's mean), "
        "not an LLM: they check the pipeline, they are not findings."
        if backend == "offline"
        else f"Answers from `{frames.header.get('model', '?')}` over `{backend}`."
    )
    lines = [
        f"## {info.get('title', 'Allocation')}: allocations by stance",
        "",
        source,
        "",
        f"Each answer is a whole number from 0 to {info.get('maximum', '?')}; the prompts of "
        "two stances differ only in the stance sentence.",
        "",
        "| stance | answers (valid of asked) | mean [95% CI] | median | SD |",
        "|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.stance} | {s.n} of {s.asked} ({_f(s.valid_rate, 2)}) | {_f(s.mean)} "
            f"[{_f(s.low)}, {_f(s.high)}] | {_f(s.median)} | {_f(s.sd)} |"
        )
    amounts = {
        s: allocations.filter(pl.col("stance") == s)["amount"].cast(pl.Float64).to_list()
        if not allocations.is_empty()
        else []
        for s in stances
    }
    if "generous" in amounts and "selfish" in amounts:
        shift = analysis.shift(amounts["generous"], amounts["selfish"])
        lines += [
            "",
            f"Shift, generous − selfish: {_f(shift.difference)} [{_f(shift.low)}, "
            f"{_f(shift.high)}] (Welch 95% interval).",
        ]
    if not allocations.is_empty():
        _draw(amounts, int(info.get("maximum", 100)), out / "allocations.png")
        lines += ["", "![allocations](allocations.png)"]
    return [*lines, ""]


def _f(value: float, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _draw(amounts: dict[str, list[float]], maximum: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    bins = [float(b) for b in np.linspace(0, maximum, min(maximum, 20) + 1)]
    for stance, values in amounts.items():
        if values:
            ax.hist(values, bins=bins, alpha=0.5, label=f"{stance} (n={len(values)})")
    ax.set_xlabel(f"amount (0–{maximum})")
    ax.set_ylabel("answers")
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


PLUGIN = AllocationPlugin()

__all__ = ["PLUGIN", "AllocationConfig", "AllocationPlugin", "AllocationWorld"]
