"""Who plays FairMindSim's game. A cohort gives each observer its profile (the text its system
prompt carries), the dispositions the offline agents play by, the records that log who they
are, and what goes into every digest. FairMindSim's own cohort is its psychometric personas
(``personas.py``); a world that reuses the game with people of its own (ProSim's Study 2)
hands the game a cohort of its own, and the game, its records and its fitting stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import numpy as np

from agora.engine.records import AgentId, LogRecord
from agora.worlds.fairmind.items import AQ, CESD, ERS, JSI
from agora.worlds.fairmind.personas import SVO_TYPES, Persona, Svo, render


class Disposition(msgspec.Struct, frozen=True):
    """What the offline agents (``offline.py``) read from a person, each a z-score against
    the cohort's population: sensitivity to injustice, emotional reactivity, low mood
    (depressive symptoms) and preference for routine; and a social value orientation."""

    justice: float
    reactivity: float
    low_mood: float
    routine: float
    svo: Svo


class Cohort(Protocol):
    """The people of a FairMindSim game (one observer each)."""

    @property
    def source(self) -> str:
        """``generated``, or the file they were read from."""
        ...

    @property
    def questionnaires(self) -> bool:
        """Whether FairMindSim's scales (their items in the rules) describe these people."""
        ...

    def __len__(self) -> int: ...

    def profile(self, agent_id: AgentId) -> str: ...

    def disposition(self, agent_id: AgentId) -> Disposition: ...

    def records(self) -> list[LogRecord]:
        """Who they are, logged once with tick 0."""
        ...

    def fingerprint(self) -> Any:
        """What the game's digests carry of them (JSON-encodable): a replay on other people
        fails its first tick."""
        ...

    def describe(self) -> dict[str, Any]: ...


class FairMindPersona(LogRecord, tag="fairmind_persona"):
    """Each agent's persona, logged once with tick 0, so analyses read it with the trials."""

    tick: int
    agent: AgentId
    participant: str
    source: str
    age: int
    gender: str
    region: str
    aq: int
    ers: int
    cesd: int
    jsi: int
    svo: str


class Profiles:
    """A cohort's people and their profiles, rendered once (the same in every one of an
    agent's prompts): a cohort's ``__len__``, ``profile`` and ``fingerprint``."""

    def __init__(self, people: Sequence[Any], profiles: Sequence[str], source: str) -> None:
        self.people = tuple(people)
        self._profiles = tuple(profiles)
        self.source = source

    def __len__(self) -> int:
        return len(self.people)

    def profile(self, agent_id: AgentId) -> str:
        return self._profiles[agent_id]

    def fingerprint(self) -> Any:
        return self.people


class FairMindCohort(Profiles):
    """FairMindSim's personas: Table 1's scales, their z-scores the dispositions."""

    questionnaires = True

    def __init__(self, personas: Sequence[Persona], source: str, digest: str | None) -> None:
        super().__init__(personas, [render(p) for p in personas], source)
        self.personas = tuple(personas)
        self.digest = digest

    def disposition(self, agent_id: AgentId) -> Disposition:
        p = self.personas[agent_id]
        return Disposition(p.trait_z(JSI), p.trait_z(ERS), p.trait_z(CESD), p.trait_z(AQ), p.svo)

    def records(self) -> list[LogRecord]:
        return [
            FairMindPersona(
                tick=0,
                agent=agent,
                participant=p.participant,
                source=self.source,
                age=p.age,
                gender=p.gender,
                region=p.region,
                aq=p.aq,
                ers=p.ers,
                cesd=p.cesd,
                jsi=p.jsi,
                svo=p.svo,
            )
            for agent, p in enumerate(self.personas)
        ]

    def describe(self) -> dict[str, Any]:
        personas = self.personas
        return {
            "personas": self.source,
            "personas_digest": self.digest,
            "mean_age": round(float(np.mean([p.age for p in personas])), 2),
            "male": sum(p.gender == "male" for p in personas),
            "svo": {kind: sum(p.svo == kind for p in personas) for kind in SVO_TYPES},
        }
