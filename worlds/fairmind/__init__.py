"""FairMindSim (issue 14; ``../shared/specs/fairmind_tpp.md``): the 60-round third-party
punishment game of *Are LLMs Socially Adaptive?* with psychometric personas, the Affect Grid
and offline agents that play by BREM and its baselines.

Each agent is an observer with a persona (``personas.py``: generated from Table 1's moments
or read from a CSV of real participants) who plays the schedule's rounds (``schedule.py``;
the default ships as ``schedule.csv``). A round is one turn of three asks in one
conversation (``prompts.py``): appraisal (valence, arousal) → choice ACCEPT/PUNISH with its
chain of thought and ratings → feedback ratings after the outcome. Agents never meet, so the
world is independent and runs barrier-free. Each played round is a ``fairmind_trial`` record
and each of its personas a ``fairmind_persona`` record (``world.py``, ``cohort.py``: who plays
is a cohort, which logs its own people, so another world can play the game with people of its
own, ``game_parts``);
``metrics.py`` computes the
paper's measures over the trials; ``brem.py`` holds the BREM equations the offline agents
(``offline.py``) and the fitting share.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agora.engine.protocols import WorldParts
from agora.engine.records import LogRecord
from agora.engine.seeding import Seeds
from agora.worlds.fairmind import personas as persona_module
from agora.worlds.fairmind.cohort import Cohort, Disposition, FairMindCohort, FairMindPersona
from agora.worlds.fairmind.config import FairMindConfig, OfflineMix
from agora.worlds.fairmind.offline import FairMindOffline
from agora.worlds.fairmind.prompts import FairMindPrompts
from agora.worlds.fairmind.schedule import load_schedule
from agora.worlds.fairmind.world import (
    FairMindTrial,
    FairMindWorld,
    RoundAnswer,
    RoundOutcome,
    RoundView,
)


def game_parts(settings: FairMindConfig, cohort: Cohort, seeds: Seeds) -> WorldParts:
    """The game's world, words and offline agents for ``cohort``'s people: how FairMindSim
    builds itself, and how another world plays the same game with people of its own."""
    schedule = load_schedule(settings.schedule)
    dispositions = [cohort.disposition(agent) for agent in range(len(cohort))]
    return WorldParts(
        world=FairMindWorld(settings, cohort, schedule),
        prompts=FairMindPrompts(settings, cohort, schedule),
        offline=FairMindOffline(dispositions, settings.offline, seeds),
    )


class FairMindPlugin:
    name = "fairmind"
    # Its observers never meet: the engine runs it barrier-free and refuses shared policies.
    independent = True
    config_type = FairMindConfig
    action_type = RoundAnswer
    record_types: tuple[type[LogRecord], ...] = (FairMindTrial, FairMindPersona)
    # The tick metrics a sweep report draws and tables.
    report_metrics = ("punish_rate", "mean_appraisal_valence", "mean_feedback_valence")

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        settings: FairMindConfig = config
        if settings.personas is None:
            personas = persona_module.generate(settings.agents, seeds)
            source, digest = "generated", None
        else:
            personas = persona_module.load(settings.personas, settings.agents)
            source, digest = settings.personas, persona_module.file_digest(settings.personas)
        return game_parts(settings, FairMindCohort(personas, source, digest), seeds)

    def run_sections(self, frames: Any, run_dir: Path, out: Path) -> list[str]:
        from agora.worlds.fairmind.report_sections import run_sections

        return run_sections(frames, run_dir, out)

    def sweep_sections(self, runs: Sequence[Any], analysis: Any, out: Path) -> list[str]:
        from agora.worlds.fairmind.report_sections import sweep_sections

        return sweep_sections(runs, out)


PLUGIN = FairMindPlugin()

__all__ = [
    "PLUGIN",
    "Cohort",
    "Disposition",
    "FairMindCohort",
    "FairMindConfig",
    "FairMindPersona",
    "FairMindPlugin",
    "FairMindTrial",
    "FairMindWorld",
    "OfflineMix",
    "RoundAnswer",
    "RoundOutcome",
    "RoundView",
    "game_parts",
]
