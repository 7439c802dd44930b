"""The ``[world]`` tables of ProSim's two worlds, checked by msgspec (a mistake is one line
naming the field)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from agora.worlds.prosim.texts import INTERVENTIONS, Intervention

Rating = Annotated[float, msgspec.Meta(ge=-6.0, le=6.0)]
Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Spread = Annotated[float, msgspec.Meta(ge=0.0, le=3.0)]


class ScenarioEffects(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The offline respondents of Study 1 (``offline.py``): a behavioural model, never an LLM.
    Willingness (1–7) = round(base + scenario shift + disposition × prosociality z +
    intervention effect + noise), clipped. Our assumptions, so the analyses have effects to
    find; not findings about LLMs or people."""

    base: Rating = 4.5
    # Per scenario key; a key not listed shifts by 0.
    scenario_shift: dict[str, float] = msgspec.field(
        default_factory=lambda: {
            "volunteering": 0.0,
            "homeless": 0.3,
            "donation": -0.3,
            "cooperation": -0.2,
            "recycling": 0.6,
            "camera": -0.8,
        }
    )
    disposition: Rating = 0.8
    moral: Rating = 0.4
    social: Rating = 0.5
    # A rule with a penalty crowds out the wish to help (reactance): below no policy.
    enforce: Rating = -0.4
    economic: Rating = 0.8
    noise: Spread = 0.6

    def effect(self, intervention: Intervention) -> float:
        return 0.0 if intervention == "none" else float(getattr(self, intervention))


class ScenariosConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "prosim_scenarios"
    agents: Annotated[int, msgspec.Meta(ge=1)] = 104
    # A persona CSV (``personas.py`` lists its columns); unset: generated.
    personas: str | None = None
    # The scenario and intervention texts (TOML; ``texts.py``); unset: the shipped file.
    scenarios: str | None = None
    # The conditions each agent rates every scenario under (a within-agent design); one
    # condition per run and a sweep over them is the between-agent design.
    interventions: tuple[Intervention, ...] = INTERVENTIONS
    # Ask for the Belief–Desire–Intention reasons with each rating.
    reasons: bool = True
    # "seeded": each agent gets the items in its own seeded order (no order effect shared by
    # all); "fixed": scenario by scenario, conditions in the order listed.
    order: Literal["seeded", "fixed"] = "seeded"
    offline: ScenarioEffects = msgspec.field(default_factory=ScenarioEffects)


class GraphConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The social graph: a seeded Watts–Strogatz small world, or a file (``graph_io.py``:
    an edge list, ``.edgelist``/``.txt``/``.csv``, or GraphML)."""

    neighbours: Annotated[int, msgspec.Meta(ge=2)] = 6
    rewire: Share = 0.2
    file: str | None = None


class ContagionEffects(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The offline residents of Study 3 (``offline.py``): a behavioural model, never an LLM.
    Each day, with T = 1 when the institution treats it unfairly, E = min(teammates who told
    it of refusals today, 2) and H = the hurt days (treated or told) in the days it sees:
    perceived unfairness u = fair_base + treated_unfairness·T + exposed_unfairness·E +
    grudge·H + noise, and willingness = base + disposition·(prosociality z) −
    unfairness_weight·(u − fair_base) − treated_willingness·T − exposed_willingness·E +
    noise; each rounded and clipped to 1–7. So the policy's and the exposure's effect on
    willingness runs partly through the unfairness felt (the mediation the analysis
    estimates) and partly directly."""

    base: Rating = 5.0
    disposition: Rating = 0.8
    fair_base: Rating = 2.5
    treated_unfairness: Rating = 2.5
    exposed_unfairness: Rating = 1.0
    grudge: Rating = 0.15
    unfairness_weight: Rating = 0.4
    treated_willingness: Rating = 0.5
    exposed_willingness: Rating = 0.3
    noise: Spread = 0.4


class NetworkConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "prosim_network"
    agents: Annotated[int, msgspec.Meta(ge=3)] = 104
    personas: str | None = None
    scenarios: str | None = None
    # The prosocial behaviour agents rate each day (a scenario key of the scenario file).
    scenario: str = "volunteering"
    graph: GraphConfig = msgspec.field(default_factory=GraphConfig)
    # The share of edges active each day: round(rate × edges) of them, drawn without
    # replacement from the day's seeded stream.
    activation_rate: Share = 0.3
    # How many of its past days an agent sees (its own ratings).
    memory_days: Annotated[int, msgspec.Meta(ge=0)] = 7
    # The stance of the policies' signals that marks an agent treated unfairly by an
    # institution (``policies/inequity.py`` speaks for "inequity").
    treatment_signal: str = "inequity"
    offline: ContagionEffects = msgspec.field(default_factory=ContagionEffects)
