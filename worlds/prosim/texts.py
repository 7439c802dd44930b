"""The scenario and intervention texts: a TOML data file (the default ships as
``scenarios.toml`` beside this file; ``world.scenarios`` points at another).

Each ``[[scenarios]]`` entry has a ``key`` (a short name, unique), a ``title``, the situation
in the second person (``text``) and one text per intervention (``moral``, ``social``,
``enforce``, ``economic``). A missing field or a duplicate key is one line naming the file,
the entry and the fix.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

from agora.engine.config import ConfigError

Intervention = Literal["none", "moral", "social", "enforce", "economic"]
INTERVENTIONS: tuple[Intervention, ...] = ("none", "moral", "social", "enforce", "economic")
POLICY_TEXTS: tuple[Intervention, ...] = INTERVENTIONS[1:]
DEFAULT_SCENARIOS = Path(__file__).with_name("scenarios.toml")


class Scenario(msgspec.Struct, frozen=True):
    key: str
    title: str
    text: str
    moral: str
    social: str
    enforce: str
    economic: str

    def intervention_text(self, intervention: Intervention) -> str:
        return "" if intervention == "none" else str(getattr(self, intervention))


class Scenarios(msgspec.Struct, frozen=True):
    items: tuple[Scenario, ...]
    source: str
    digest: str

    def by_key(self, key: str) -> Scenario:
        for scenario in self.items:
            if scenario.key == key:
                return scenario
        raise KeyError(key)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.items)


def load_scenarios(path: str | None, field: str = "world.scenarios") -> Scenarios:
    file = DEFAULT_SCENARIOS if path is None else Path(path)
    try:
        data = file.read_bytes()
        table = tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{field}: no scenario file {file} (give a TOML path)") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{field}: {file} is not a readable TOML file ({exc})") from None
    entries = table.get("scenarios")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{field}: {file} has no [[scenarios]] entries; add at least one")
    items: list[Scenario] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{field}: {file}: scenario {number}"
        try:
            scenario = msgspec.convert(entry, Scenario)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{where}: {exc}; every scenario needs {_FIELDS}") from None
        if not scenario.key.strip() or any(
            not str(v).strip() for v in msgspec.structs.astuple(scenario)
        ):
            raise ConfigError(f"{where}: an empty text; write every one of {_FIELDS}")
        if ":" in scenario.key or not scenario.key.isprintable():
            raise ConfigError(f"{where}: key {scenario.key!r} has a ':'; use letters and _")
        if scenario.key in {s.key for s in items}:
            raise ConfigError(f"{where}: key {scenario.key!r} is used twice; keys must differ")
        items.append(scenario)
    source = "default" if path is None else str(file)
    return Scenarios(tuple(items), source, hashlib.sha256(data).hexdigest()[:16])


_FIELDS = ", ".join(Scenario.__struct_fields__)
