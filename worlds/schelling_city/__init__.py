"""Schelling city (altruism emergence): agents migrate between districts, torn between their own
utility and the city's. See ``../shared/specs/schelling_city.md``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agora.engine.protocols import WorldParts
from agora.engine.seeding import Seeds
from agora.worlds.schelling_city.config import SchellingConfig
from agora.worlds.schelling_city.mock import CityTextResponder
from agora.worlds.schelling_city.offline import RuleResidents
from agora.worlds.schelling_city.picture import draw_city
from agora.worlds.schelling_city.prompts import CityPrompts
from agora.worlds.schelling_city.sweep_analysis import sweep_sections
from agora.worlds.schelling_city.world import Relocation, SchellingCity


class SchellingCityPlugin:
    name = "schelling_city"
    config_type = SchellingConfig
    action_type = Relocation
    # The mock server answers this world's prompts with it.
    text_responder = CityTextResponder()
    # What a sweep report draws over ticks and tables at equilibrium.
    report_metrics = ("poa", "gini", "altruistic_share", "egoistic_share")
    # The grounded-theory codebook a sweep report codes reasonings with.
    codebook_path = Path(__file__).with_name("codebook.toml")
    # What a frame's title shows, and what the mean over a run's last ticks is called.
    picture_metrics = ("poa", "gini")
    last_ticks_label = "equilibrium"

    def table_axes(self, name: str) -> tuple[str, str] | None:
        """The behaviour matrix's axes: rows by Δ personal, columns by Δ system utility."""
        if name != "matrix":
            return None
        return ("sign of Δ system utility", "sign of Δ personal utility")

    def sweep_sections(self, runs: Sequence[Any], analysis: Any, out: Path) -> list[str]:
        """Altruistic-act rates and the archetype verdict, for a sweep report."""
        return sweep_sections(runs, analysis, out)

    def draw(self, world: Any, ax: Any) -> None:
        """The city at the current state, on a matplotlib axes (frames and reports)."""
        draw_city(world, ax)

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        city = SchellingCity(config, seeds.rng("world-init"))
        offline = RuleResidents(config.offline, config.agents, seeds.rng("offline-mix"))
        return WorldParts(world=city, prompts=CityPrompts(city), offline=offline)


PLUGIN = SchellingCityPlugin()
