"""Study 2: third-party punishment, played by ProSim's people (``prosim_punishment``).

The game is FairMindSim's (``agora.worlds.fairmind``: its world, words, schedule, trial
records, metrics and fitting), which already has ProSim's settings: Player 1 splits $30 with
Player 2, the judge keeps $10 or pays $y to cut Player 1 to $0, inequity × cost varied, and
valence and arousal rated before (appraisal) and after (feedback) each choice. What this
module adds is who plays: ProSim's personas (``personas.py``, generated or from a persona CSV,
``world.personas``) in ProSim's words, logged as ``prosim_persona`` records.

FairMindSim's offline agents play by four dispositions and a social value orientation
(``fairmind.cohort.Disposition``), which FairMindSim reads from its psychometric scales.
ProSim's people have other traits, so we map them (our choice; neither paper links the two):

- sensitivity to injustice = z(moral identity);
- emotional reactivity = z(neuroticism);
- low mood = −z(extraversion) (low positive affect);
- preference for routine = −z(openness);
- social value orientation by rank of prosociality (the mean z of the four prosocial traits)
  in the cohort: the most prosocial share FairMindSim's prosocial proportion, the least
  prosocial its competitive proportion, the rest individualistic (equal scores by agent). A
  rank depends on who else is in the cohort: the same person may get another orientation in
  a run with fewer agents.

The questionnaires' items FairMindSim puts in its rules are left out: they do not describe
these people.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np

from agora.engine.config import ConfigError
from agora.engine.protocols import WorldParts
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds
from agora.worlds.fairmind import FairMindConfig, FairMindPlugin, FairMindTrial, game_parts
from agora.worlds.fairmind.cohort import Disposition, Profiles
from agora.worlds.fairmind.personas import SVO_COUNTS, Svo
from agora.worlds.prosim import personas as persona_module
from agora.worlds.prosim.personas import Persona, render
from agora.worlds.prosim.records import ProSimPersona, persona_record


class PunishmentConfig(FairMindConfig, forbid_unknown_fields=True, frozen=True):
    """FairMindSim's settings; ``personas`` is a ProSim persona CSV (``personas.py``)."""

    kind: str = "prosim_punishment"
    agents: Annotated[int, msgspec.Meta(ge=1)] = 104
    # FairMindSim's questionnaires do not describe ProSim's people: never shown.
    item_texts: bool = False


def svo_by_rank(prosociality: Sequence[float]) -> list[Svo]:
    """Each person's orientation from its rank: FairMindSim's shares (largest remainders),
    the most prosocial first."""
    n = len(prosociality)
    total = sum(count for _, count in SVO_COUNTS)
    exact = [count / total * n for _, count in SVO_COUNTS]
    counts = [int(e) for e in exact]
    for k in sorted(range(len(exact)), key=lambda k: counts[k] - exact[k])[: n - sum(counts)]:
        counts[k] += 1
    share = dict(zip((kind for kind, _ in SVO_COUNTS), counts, strict=True))
    order = sorted(range(n), key=lambda a: (-prosociality[a], a))
    svo: list[Svo] = ["individualistic"] * n
    for a in order[: share["prosocial"]]:
        svo[a] = "prosocial"
    for a in order[n - share["competitive"] :]:
        svo[a] = "competitive"
    return svo


class ProSimCohort(Profiles):
    """ProSim's people as FairMindSim's observers (the module docstring's mapping)."""

    questionnaires = False

    def __init__(self, personas: Sequence[Persona], source: str) -> None:
        super().__init__(personas, [render(p) for p in personas], source)
        self.personas = tuple(personas)
        self._svo = svo_by_rank([p.prosociality for p in self.personas])

    def disposition(self, agent_id: AgentId) -> Disposition:
        p = self.personas[agent_id]
        return Disposition(
            justice=p.z("moral_identity"),
            reactivity=p.z("neuroticism"),
            low_mood=-p.z("extraversion"),
            routine=-p.z("openness"),
            svo=self._svo[agent_id],
        )

    def records(self) -> list[LogRecord]:
        return [persona_record(a, p, self.source) for a, p in enumerate(self.personas)]

    def describe(self) -> dict[str, Any]:
        return {
            "personas": self.source,
            "male": sum(p.gender == "male" for p in self.personas),
            "mean_prosociality": round(float(np.mean([p.prosociality for p in self.personas])), 4),
            "svo": {kind: self._svo.count(kind) for kind, _ in SVO_COUNTS},
            "svo_from": "rank of prosociality (worlds/prosim/punishment.py)",
        }


class PunishmentPlugin(FairMindPlugin):
    """FairMindSim's plugin (independent judges, its metrics, its sweep sections) with ProSim's
    people, their records and ProSim's Study 2 section in a run's report."""

    name = "prosim_punishment"
    config_type = PunishmentConfig
    record_types: tuple[type[LogRecord], ...] = (FairMindTrial, ProSimPersona)

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        settings: PunishmentConfig = config
        if settings.item_texts:
            raise ConfigError(
                "world.item_texts: FairMindSim's questionnaires do not describe ProSim's "
                "people; leave it out (a fairmind run shows them)"
            )
        people, source = persona_module.people(settings.personas, settings.agents, seeds)
        return game_parts(settings, ProSimCohort(people, source), seeds)

    def run_sections(self, frames: Any, run_dir: Path, out: Path) -> list[str]:
        from agora.worlds.fairmind.report_sections import run_sections
        from agora.worlds.prosim.report import punishment_sections

        return ["\n".join(punishment_sections(frames, out)), *run_sections(frames, run_dir, out)]
