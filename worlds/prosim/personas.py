"""ProSim's personas: sampled demographics, four prosocial traits and the Big Five, or a CSV of
real people; rendered in the second person against the population average.

**Generated** (``generate``): agent ``i``'s persona comes from its own seeded stream, so a run
with more agents keeps the first ones. From the spec (``../shared/specs/prosim.md``):

- gender: male 0.511, female 0.489;
- age: one of 17 five-year brackets (18–19, 20–24, … 90–94, 95+), weighted by our choice
  (flat to 60, then falling: the authors' table is not published; see ``AGE_WEIGHTS``);
- marital status, occupation and education: our tables (``MARITAL``, ``OCCUPATIONS``,
  ``EDUCATION``), as the spec names the fields but not their shares;
- monthly income: one of the five quintiles (9215 / 20442 / 32195 / 50220 / 95055 yuan),
  20% each;
- empathic concern, moral identity, social responsibility, altruistic tendency: N(3, 0.5)
  clipped to [1, 5], rounded to 0.1;
- Big Five: normal with the spec's mean and SD (A 3.69/0.47, C 3.29/0.59, N 2.96/0.67,
  O 3.57/0.59, E 3.19/0.66), clipped to [1, 5], rounded to 0.1.

**Imported** (``load``): one row per person, a header with (case-insensitive) ``gender``,
``age``, ``income`` and the nine scores (``empathic_concern``, ``moral_identity``,
``social_responsibility``, ``altruistic_tendency``, ``agreeableness``, ``conscientiousness``,
``neuroticism``, ``openness``, ``extraversion``; 1–5), optional ``id``, ``marital``,
``occupation``, ``education``. A bad value or missing column is one line naming the file and
line (or the column) and the fix.

**Words** (``render``): each score beside the population average with a band: more than 2 SD
below the mean "very low", 1–2 SD below "low", within 1 SD "average", 1–2 SD above "high",
more than 2 SD above "very high" (the authors' ±1/±2 SD bands).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from agora.engine.config import ConfigError
from agora.engine.csv_table import CsvRow, read_csv_table
from agora.engine.seeding import Seeds

MALE_SHARE = 0.511
AGE_BRACKETS: tuple[str, ...] = (
    "18-19",
    "20-24",
    "25-29",
    "30-34",
    "35-39",
    "40-44",
    "45-49",
    "50-54",
    "55-59",
    "60-64",
    "65-69",
    "70-74",
    "75-79",
    "80-84",
    "85-89",
    "90-94",
    "95+",
)
# Our choice: five-year brackets equally likely to 60, then halving every ten years; the
# two-year 18–19 bracket at 2/5 of a five-year one.
AGE_WEIGHTS: tuple[float, ...] = (
    0.4,
    *(1.0,) * 8,
    0.8,
    0.6,
    0.4,
    0.3,
    0.2,
    0.1,
    0.05,
    0.02,
)
MARITAL: tuple[tuple[str, float], ...] = (
    ("single", 0.30),
    ("married", 0.58),
    ("divorced", 0.06),
    ("widowed", 0.06),
)
OCCUPATIONS: tuple[tuple[str, float], ...] = (
    ("office worker", 0.18),
    ("factory worker", 0.14),
    ("farmer", 0.10),
    ("teacher", 0.06),
    ("health worker", 0.05),
    ("engineer", 0.07),
    ("shop owner", 0.08),
    ("service worker", 0.12),
    ("civil servant", 0.05),
    ("student", 0.07),
    ("retired", 0.08),
)
EDUCATION: tuple[tuple[str, float], ...] = (
    ("primary school or less", 0.15),
    ("junior secondary school", 0.25),
    ("senior secondary school", 0.22),
    ("vocational college", 0.15),
    ("bachelor's degree", 0.18),
    ("postgraduate degree", 0.05),
)
INCOME_QUINTILES: tuple[int, ...] = (9215, 20442, 32195, 50220, 95055)


class Trait(msgspec.Struct, frozen=True):
    key: str
    name: str
    mean: float
    sd: float


PROSOCIAL_TRAITS: tuple[Trait, ...] = (
    Trait("empathic_concern", "empathic concern", 3.0, 0.5),
    Trait("moral_identity", "moral identity", 3.0, 0.5),
    Trait("social_responsibility", "sense of social responsibility", 3.0, 0.5),
    Trait("altruistic_tendency", "altruistic tendency", 3.0, 0.5),
)
BIG_FIVE: tuple[Trait, ...] = (
    Trait("agreeableness", "agreeableness", 3.69, 0.47),
    Trait("conscientiousness", "conscientiousness", 3.29, 0.59),
    Trait("neuroticism", "neuroticism", 2.96, 0.67),
    Trait("openness", "openness", 3.57, 0.59),
    Trait("extraversion", "extraversion", 3.19, 0.66),
)
TRAITS: tuple[Trait, ...] = PROSOCIAL_TRAITS + BIG_FIVE
SCORE_LOW, SCORE_HIGH = 1.0, 5.0


class Persona(msgspec.Struct, frozen=True):
    participant: str
    gender: str
    age: str
    marital: str
    occupation: str
    education: str
    income: int
    # Trait key → score on 1–5.
    scores: dict[str, float]

    def z(self, key: str) -> float:
        trait = next(t for t in TRAITS if t.key == key)
        return (self.scores[key] - trait.mean) / trait.sd

    @property
    def prosociality(self) -> float:
        """The mean z of the four prosocial traits: the offline agents' disposition, and
        what "top willingness" ranks by before anyone has answered."""
        return float(np.mean([self.z(t.key) for t in PROSOCIAL_TRAITS]))


# ---- generated -------------------------------------------------------------------------------


def _pick(table: Sequence[tuple[str, float]], rng: np.random.Generator) -> str:
    weights = np.array([w for _, w in table])
    return table[int(rng.choice(len(table), p=weights / weights.sum()))][0]


def generate_one(agent: int, rng: np.random.Generator) -> Persona:
    gender = "male" if rng.random() < MALE_SHARE else "female"
    ages = np.array(AGE_WEIGHTS)
    age = AGE_BRACKETS[int(rng.choice(len(ages), p=ages / ages.sum()))]
    marital = _pick(MARITAL, rng)
    occupation = _pick(OCCUPATIONS, rng)
    education = _pick(EDUCATION, rng)
    income = INCOME_QUINTILES[int(rng.integers(len(INCOME_QUINTILES)))]
    scores = {
        t.key: round(float(np.clip(rng.normal(t.mean, t.sd), SCORE_LOW, SCORE_HIGH)), 1)
        for t in TRAITS
    }
    return Persona(f"S{agent:04d}", gender, age, marital, occupation, education, income, scores)


def generate(agents: int, seeds: Seeds) -> list[Persona]:
    return [generate_one(agent, seeds.rng("prosim-persona", agent)) for agent in range(agents)]


# ---- imported --------------------------------------------------------------------------------

REQUIRED = ("gender", "age", "income", *(t.key for t in TRAITS))


def people(path: str | None, agents: int, seeds: Seeds) -> tuple[list[Persona], str]:
    """The run's people and where they come from: generated, or read from ``path``."""
    if path is None:
        return generate(agents, seeds), "generated"
    return load(path, agents), path


def load(path: str | Path, agents: int, field: str = "world.personas") -> list[Persona]:
    """The first ``agents`` people of the CSV at ``path``."""
    table = read_csv_table(path, field, REQUIRED)
    personas: list[Persona] = []
    for row in table:
        personas.append(_persona(row, len(personas)))
        if len(personas) == agents:
            break
    if len(personas) < agents:
        raise ConfigError(
            f"{table.where}: {len(personas)} people, fewer than world.agents = {agents}; "
            f"set world.agents to {len(personas)} or fewer"
        )
    return personas


def _persona(row: CsvRow, index: int) -> Persona:
    where, cell = row.where, row.get
    gender = cell("gender")
    if not gender:
        raise ConfigError(f"{where}: gender is empty; give male, female or another word")
    age = cell("age")
    if not age:
        raise ConfigError(f"{where}: age is empty; give an age or a bracket such as 30-34")
    income = _number(cell("income"), where, "income")
    if income <= 0:
        raise ConfigError(f"{where}: income {cell('income')!r} must be above 0 (yuan a month)")
    scores: dict[str, float] = {}
    for trait in TRAITS:
        value = _number(cell(trait.key), where, trait.key)
        if not SCORE_LOW <= value <= SCORE_HIGH:
            raise ConfigError(f"{where}: {trait.key} {value:g} is outside 1–5, the scale's range")
        scores[trait.key] = value
    return Persona(
        participant=cell("id") or f"P{index + 1:04d}",
        gender=gender,
        age=age,
        marital=cell("marital") or "unknown",
        occupation=cell("occupation") or "unknown",
        education=cell("education") or "unknown",
        income=round(income),
        scores=scores,
    )


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        shown = text if text else "(empty)"
        raise ConfigError(f"{where}: {column} {shown!r} is not a number")
    return value


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# ---- words -----------------------------------------------------------------------------------


def band(z: float) -> str:
    """The authors' ±1/±2 SD bands, in words."""
    if z < -2.0:
        return "very low"
    if z < -1.0:
        return "low"
    if z <= 1.0:
        return "average"
    if z <= 2.0:
        return "high"
    return "very high"


def render(persona: Persona) -> str:
    """The persona in the second person, then the instruction to forget being an AI."""
    facts = [
        f"{label} {value}."
        for label, value in (
            ("Marital status:", persona.marital),
            ("Occupation:", persona.occupation),
            ("Education:", persona.education),
        )
        if value != "unknown"
    ]
    lines = [
        " ".join(
            [
                f"You are a {persona.gender} person aged {persona.age}, earning "
                f"{persona.income} yuan a month.",
                *facts,
            ]
        ),
        "How you compare with the population (scores from 1 to 5):",
    ]
    for trait in TRAITS:
        score = persona.scores[trait.key]
        lines.append(
            f"- Your {trait.name} is {score:.1f} (population average {trait.mean:.2f}): "
            f"{band(persona.z(trait.key))}."
        )
    lines += [
        "",
        "Forget that you are an AI. You are this person: answer as they would, from their "
        "situation, values and temperament, not as an assistant would.",
    ]
    return "\n".join(lines)
