"""FairMindSim's psychometric personas: generated from Table 1's moments, or read from a CSV of
real participants, and rendered into the words an agent is given.

**Generated** (``generate``): each persona from its own seeded stream (agent ``i``'s persona
depends on the run's seed and ``i`` alone, so a run with more agents keeps the first ones).
Table 1 gives marginal moments only, so the traits are drawn independently:

- age: 18 + a lognormal with the mean (5.65) and SD (6.44) of age above 18, so the mean is
  23.65, the SD 6.44 and nobody is under 18 (a normal clipped at 18 would pile a fifth of the
  cohort on 18 and raise the mean); rounded to whole years;
- gender: male with p = 530/1017 (52.1%), else female;
- region: CN 81.8%, US 4.9%, CA 4.4%, UK 3.5%, other 5.4% (the paper: "including Australia
  and EU countries"; rendered as Australia or an EU country, half each);
- AQ, ERS, CES-D, JSI: normal with Table 1's mean and SD, rounded and clipped to the scale's
  range (``items.py``);
- SVO: prosocial / individualistic / competitive in the proportions of the 879 classified
  participants (544 / 313 / 22).

**Imported** (``load``): one row per participant. Columns (a header; names are
case-insensitive, other columns are ignored): ``age``, ``gender``, ``svo``, optional ``id``
and ``region``, and for each scale either its total (``aq``, ``ers``, ``cesd``, ``jsi``) or
all its item columns (``aq_1`` … ``aq_28``, ``ers_1`` … ``ers_21``, ``cesd_1`` …
``cesd_20``, ``jsi_1`` … ``jsi_10``), keyed item scores that are summed; with both, they must
agree. A bad value or a missing column is a one-line ``ConfigError`` naming the file and line
(or the column) and the fix.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np

from agora.engine.config import ConfigError
from agora.engine.csv_table import read_csv_table
from agora.engine.seeding import Seeds
from agora.worlds.fairmind.items import SCALES, Scale

Svo = Literal["prosocial", "individualistic", "competitive"]
SVO_TYPES: tuple[Svo, ...] = ("prosocial", "individualistic", "competitive")

# Table 1 (N = 1,017), as proportions.
AGE_MEAN, AGE_SD, AGE_MIN = 23.65, 6.44, 18
MALE_SHARE = 530 / 1017
REGIONS: tuple[tuple[str, float], ...] = (
    ("CN", 0.818),
    ("US", 0.049),
    ("CA", 0.044),
    ("UK", 0.035),
    ("other", 0.054),
)
SVO_COUNTS: tuple[tuple[Svo, int], ...] = (
    ("prosocial", 544),
    ("individualistic", 313),
    ("competitive", 22),
)
# What "other" stands for in the paper's note to Table 1.
OTHER_REGIONS = ("Australia", "an EU country")
REGION_NAMES = {
    "CN": "China",
    "US": "the United States",
    "CA": "Canada",
    "UK": "the United Kingdom",
}

_SVO_ALIASES: dict[str, Svo] = {
    "prosocial": "prosocial",
    "pro": "prosocial",
    "individualistic": "individualistic",
    "individualist": "individualistic",
    "ind": "individualistic",
    "competitive": "competitive",
    "comp": "competitive",
}
_GENDER_ALIASES = {
    "m": "male",
    "male": "male",
    "man": "male",
    "f": "female",
    "female": "female",
    "woman": "female",
}


class Persona(msgspec.Struct, frozen=True):
    """One participant: demographics, the four scale totals and the SVO type. ``items``
    holds the item scores by scale key when they were imported (empty when generated)."""

    participant: str
    age: int
    gender: str
    region: str
    aq: int
    ers: int
    cesd: int
    jsi: int
    svo: Svo
    items: dict[str, tuple[int, ...]] = msgspec.field(default_factory=dict)

    def score(self, scale: Scale) -> int:
        value = getattr(self, scale.key)
        assert isinstance(value, int)
        return value

    def trait_z(self, scale: Scale) -> float:
        """How far the persona sits from Table 1's mean, in its SD (the offline agents'
        parameters and affect are built on these)."""
        return (self.score(scale) - scale.mean) / scale.sd


# ---- generated -------------------------------------------------------------------------------


def _age_lognormal() -> tuple[float, float]:
    """(μ, σ) of the lognormal for age − 18 with Table 1's mean and SD."""
    mean, sd = AGE_MEAN - AGE_MIN, AGE_SD
    sigma2 = math.log(1.0 + (sd / mean) ** 2)
    return math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)


def generate_one(agent: int, rng: np.random.Generator) -> Persona:
    mu, sigma = _age_lognormal()
    age = AGE_MIN + round(rng.lognormal(mu, sigma))
    gender = "male" if rng.random() < MALE_SHARE else "female"
    codes = [code for code, _ in REGIONS]
    shares = np.array([share for _, share in REGIONS])
    region = codes[int(rng.choice(len(codes), p=shares / shares.sum()))]
    if region == "other":
        region = OTHER_REGIONS[int(rng.integers(len(OTHER_REGIONS)))]
    scores = {
        scale.key: int(np.clip(round(rng.normal(scale.mean, scale.sd)), scale.low, scale.high))
        for scale in SCALES
    }
    counts = np.array([count for _, count in SVO_COUNTS], dtype=float)
    svo = SVO_COUNTS[int(rng.choice(len(counts), p=counts / counts.sum()))][0]
    return Persona(
        participant=f"G{agent:04d}",
        age=min(age, 99),
        gender=gender,
        region=region,
        svo=svo,
        aq=scores["aq"],
        ers=scores["ers"],
        cesd=scores["cesd"],
        jsi=scores["jsi"],
    )


def generate(agents: int, seeds: Seeds) -> list[Persona]:
    return [generate_one(agent, seeds.rng("fairmind-persona", agent)) for agent in range(agents)]


# ---- imported --------------------------------------------------------------------------------


def load(path: str | Path, agents: int, field: str = "world.personas") -> list[Persona]:
    """The first ``agents`` participants of the CSV at ``path``."""
    table = read_csv_table(path, field, ("age", "gender", "svo"))
    where = table.where
    sources = {scale.key: _scale_columns(scale, table.columns, where) for scale in SCALES}
    personas: list[Persona] = []
    for row in table:
        personas.append(_persona(row.cells, row.columns, sources, row.where, len(personas)))
        if len(personas) == agents:
            break
    if len(personas) < agents:
        raise ConfigError(
            f"{where}: {len(personas)} participants, fewer than world.agents = {agents}; "
            f"set world.agents to {len(personas)} or fewer"
        )
    return personas


def _scale_columns(scale: Scale, columns: Mapping[str, int], where: str) -> tuple[bool, bool]:
    """Whether the file has the scale's total, and all of its items; neither is an error."""
    item_names = [scale.item_column(n) for n in range(1, len(scale.items) + 1)]
    present = [name for name in item_names if name in columns]
    if present and len(present) < len(item_names):
        missing = next(name for name in item_names if name not in columns)
        raise ConfigError(
            f"{where}:1: column {missing!r} is missing while other {scale.key} items are "
            f"there; give all of {item_names[0]} … {item_names[-1]} or the total {scale.key!r}"
        )
    has_total, has_items = scale.key in columns, bool(present)
    if not (has_total or has_items):
        raise ConfigError(
            f"{where}:1: no column {scale.key!r} (the {scale.name} total) and no items "
            f"{item_names[0]} … {item_names[-1]}; add one or the other"
        )
    return has_total, has_items


def _persona(
    row: Sequence[str],
    columns: Mapping[str, int],
    sources: Mapping[str, tuple[bool, bool]],
    where: str,
    index: int,
) -> Persona:
    def cell(name: str) -> str:
        return row[columns[name]].strip()

    age = _whole(cell("age"), where, "age")
    if not AGE_MIN <= age <= 120:
        raise ConfigError(f"{where}: age {age} is outside {AGE_MIN}–120 (adults only)")
    gender_text = cell("gender")
    if not gender_text:
        raise ConfigError(f"{where}: gender is empty; give male, female or another word")
    gender = _GENDER_ALIASES.get(gender_text.lower(), gender_text)
    svo_text = cell("svo").lower()
    if svo_text not in _SVO_ALIASES:
        raise ConfigError(
            f"{where}: svo {cell('svo')!r} is not prosocial, individualistic or competitive"
        )
    region = cell("region") if "region" in columns and cell("region") else "unknown"
    participant = cell("id") if "id" in columns and cell("id") else f"P{index + 1:04d}"
    scores: dict[str, int] = {}
    items: dict[str, tuple[int, ...]] = {}
    for scale in SCALES:
        has_total, has_items = sources[scale.key]
        total: int | None = None
        if has_items:
            values = []
            for number in range(1, len(scale.items) + 1):
                name = scale.item_column(number)
                value = _whole(cell(name), where, name)
                if not scale.item_min <= value <= scale.item_max:
                    raise ConfigError(
                        f"{where}: {name} {value} is outside {scale.item_min}–"
                        f"{scale.item_max}, the {scale.key} item range"
                    )
                values.append(value)
            items[scale.key] = tuple(values)
            total = sum(values)
        if has_total:
            given = _whole(cell(scale.key), where, scale.key)
            if not scale.low <= given <= scale.high:
                raise ConfigError(
                    f"{where}: {scale.key} {given} is outside {scale.low}–{scale.high}, the "
                    f"range of the {scale.name} ({len(scale.items)} items scored "
                    f"{scale.item_min}–{scale.item_max})"
                )
            if total is not None and total != given:
                raise ConfigError(
                    f"{where}: {scale.key} {given} is not the sum of its items ({total}); "
                    "fix one or drop the total column"
                )
            total = given
        assert total is not None
        scores[scale.key] = total
    return Persona(
        participant=participant,
        age=age,
        gender=gender,
        region=region,
        svo=_SVO_ALIASES[svo_text],
        items=items,
        aq=scores["aq"],
        ers=scores["ers"],
        cesd=scores["cesd"],
        jsi=scores["jsi"],
    )


def _whole(text: str, where: str, column: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value != int(value):
        shown = text if text else "(empty)"
        raise ConfigError(f"{where}: {column} {shown!r} is not a whole number")
    return int(value)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# ---- words -----------------------------------------------------------------------------------

SVO_WORDS: dict[str, str] = {
    "prosocial": "prosocial: you value good outcomes for others as well as for yourself",
    "individualistic": "individualistic: you care mainly about your own outcomes",
    "competitive": "competitive: you want to do better than others",
}


def region_words(region: str) -> str:
    return REGION_NAMES.get(region, region)


def render(persona: Persona) -> str:
    """The persona as the agent reads it: its profile, then the deep role-play instruction
    (section 2.1.2: "Forget you are an AI model… Your decisions must reflect your …
    values."). The questionnaires' items are in the rules, shared by every agent."""
    gender = persona.gender
    where = "" if persona.region == "unknown" else f"; from {region_words(persona.region)}"
    lines = [
        "Your profile:",
        f"- Participant {persona.participant}: age {persona.age}; {gender}{where}.",
    ]
    for scale in SCALES:
        lines.append(
            f"- {scale.name}: {persona.score(scale)} (possible {scale.low}–{scale.high}; "
            f"the study's participants: mean {scale.mean:g}, SD {scale.sd:g})."
        )
    lines.append(f"- Social value orientation: {SVO_WORDS[persona.svo]}.")
    for scale in SCALES:
        answers = persona.items.get(scale.key)
        if answers:
            listed = ", ".join(f"{n}: {v}" for n, v in enumerate(answers, start=1))
            lines.append(f"- Your {scale.key.upper()} answers, item by item: {listed}.")
    lines += [
        "",
        "Forget you are an AI model. You are this person, with this background and these "
        "traits: think, decide and feel as they would, not as an assistant would. Your "
        "decisions and your feelings must reflect your sensitivity to injustice, your "
        f"emotional reactivity, your mood and your {persona.svo} values.",
    ]
    return "\n".join(lines)
