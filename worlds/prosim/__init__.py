"""ProSim (issue 15; ``../shared/specs/prosim.md``): prosocial behaviour of LLM agents under
institutional policies, in three studies on one set of personas.

- **Study 1** (``prosim_scenarios``, ``questionnaire.py``): six everyday prosocial scenarios,
  each under no policy or one of four interventions, rated 1–7 with optional
  Belief–Desire–Intention reasons; one multi-ask turn per agent.
- **Study 2** (``prosim_punishment``, ``punishment.py``): FairMindSim's third-party punishment
  game (its world, words and fitting, not a copy) played by ProSim's personas.
- **Study 3** (``prosim_network``, ``network.py``): days on a social graph, an institution's
  inequity towards a few seed agents (the ``inequity`` policy) and its contagion.

``personas.py`` makes the agents (generated or from a CSV), ``texts.py`` reads the scenario
and intervention texts (``scenarios.toml``), ``offline.py`` holds the offline behavioural
models, ``analysis.py`` the analyses (CIs, mediation) and ``report.py`` the studies' report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agora.engine.config import ConfigError
from agora.engine.protocols import WorldParts
from agora.engine.records import LogRecord
from agora.engine.seeding import Seeds
from agora.worlds.prosim import personas as persona_module
from agora.worlds.prosim.config import NetworkConfig, ScenariosConfig
from agora.worlds.prosim.graph_io import build_graph
from agora.worlds.prosim.network import (
    DayAnswer,
    NetworkPrompts,
    NetworkWorld,
    ProSimChange,
    ProSimDay,
    ProSimDelivery,
)
from agora.worlds.prosim.offline import ContagionResidents, ScenarioRespondents
from agora.worlds.prosim.punishment import PunishmentPlugin
from agora.worlds.prosim.questionnaire import (
    ProSimRating,
    Questionnaire,
    QuestionnairePrompts,
    ScenarioWorld,
)
from agora.worlds.prosim.records import ProSimPersona
from agora.worlds.prosim.texts import load_scenarios

STATE_COLOURS = {"unaffected": "#9ecae1", "seed": "#7f0000", "affected": "#e34a33"}


class ScenariosPlugin:
    name = "prosim_scenarios"
    independent = True
    config_type = ScenariosConfig
    action_type = Questionnaire
    record_types: tuple[type[LogRecord], ...] = (ProSimRating, ProSimPersona)
    report_metrics = ("mean_willingness",)

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        settings: ScenariosConfig = config
        if not settings.interventions:
            raise ConfigError("world.interventions: empty; list at least one (none, moral, …)")
        scenarios = load_scenarios(settings.scenarios)
        personas, source = persona_module.people(settings.personas, settings.agents, seeds)
        return WorldParts(
            world=ScenarioWorld(settings, personas, scenarios, seeds, source),
            prompts=QuestionnairePrompts(settings, personas, scenarios),
            offline=ScenarioRespondents(personas, settings.offline),
        )

    def run_sections(self, frames: Any, run_dir: Path, out: Path) -> list[str]:
        from agora.worlds.prosim.report import scenario_sections

        return ["\n".join(scenario_sections(frames, out))]  # one block: its own blank lines


class NetworkPlugin:
    name = "prosim_network"
    config_type = NetworkConfig
    action_type = DayAnswer
    record_types: tuple[type[LogRecord], ...] = (
        ProSimDay,
        ProSimDelivery,
        ProSimChange,
        ProSimPersona,
    )
    report_metrics = ("affected_share", "mean_willingness", "mean_unfairness")
    picture_metrics = ("affected_share", "mean_willingness", "mean_unfairness")
    last_ticks_label = "last days' mean"

    def table_axes(self, name: str) -> tuple[str, str] | None:
        return None

    def tick_name(self, tick: int) -> str:
        return f"day {tick + 1}"

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        settings: NetworkConfig = config
        scenarios = load_scenarios(settings.scenarios)
        if settings.scenario not in scenarios.keys:
            raise ConfigError(
                f"world.scenario: {settings.scenario!r} is not a scenario of "
                f"{scenarios.source}; use one of {', '.join(scenarios.keys)}"
            )
        personas, source = persona_module.people(settings.personas, settings.agents, seeds)
        graph = build_graph(settings.graph, settings.agents, seeds)
        scenario = scenarios.by_key(settings.scenario)
        return WorldParts(
            world=NetworkWorld(settings, graph, personas, scenario, seeds, source),
            prompts=NetworkPrompts(settings, personas, scenario),
            offline=ContagionResidents(personas, settings.offline, settings.treatment_signal),
        )

    def run_sections(self, frames: Any, run_dir: Path, out: Path) -> list[str]:
        from agora.worlds.prosim.report import network_sections

        return ["\n".join(network_sections(frames, out))]  # one block: its own blank lines

    def draw(self, world: Any, ax: Any) -> None:
        """The graph on the last day applied, coloured by state; seeds ringed in black,
        today's exposures drawn as the edges they came along."""
        import networkx as nx
        from matplotlib.lines import Line2D

        network: NetworkWorld = world
        if not hasattr(network, "layout"):
            network.layout = nx.spring_layout(network.graph, seed=7)  # type: ignore[attr-defined]
        layout = network.layout  # type: ignore[attr-defined]
        tick = network.last_tick
        active = network.active_edges(tick) if tick >= 0 else ()
        told = (
            [(s, r) for r, senders in network.exposures(tick).items() for s in senders]
            if tick >= 0
            else []
        )
        nx.draw_networkx_edges(network.graph, layout, ax=ax, edge_color="#dddddd", width=0.5)
        nx.draw_networkx_edges(network.graph, layout, edgelist=active, ax=ax, width=0.8)
        if told:
            nx.draw_networkx_edges(
                network.graph, layout, edgelist=told, ax=ax, edge_color="#e34a33", width=1.6
            )
        nodes = list(network.graph.nodes())
        colours = [STATE_COLOURS[network.state[n]] for n in nodes]
        rings = ["black" if network.state[n] == "seed" else "white" for n in nodes]
        nx.draw_networkx_nodes(
            network.graph, layout, ax=ax, node_color=colours, edgecolors=rings, node_size=60
        )
        handles = [
            Line2D([], [], marker="o", linestyle="", color=c, label=s, markersize=7)
            for s, c in STATE_COLOURS.items()
        ]
        handles.append(Line2D([], [], color="#e34a33", label="refusal told today"))
        ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.8)
        ax.set_axis_off()


SCENARIOS = ScenariosPlugin()
NETWORK = NetworkPlugin()
PUNISHMENT = PunishmentPlugin()

__all__ = [
    "NETWORK",
    "PUNISHMENT",
    "SCENARIOS",
    "NetworkPlugin",
    "PunishmentPlugin",
    "ScenariosPlugin",
]
