"""ProSim's offline stand-ins: seeded behavioural models whose willingness responds to the
policy, to exposure and to unfairness in the directions and sizes their configs document
(``config.ScenarioEffects``, ``config.ContagionEffects``), so that the analyses have effects to
find and a run without a policy finds none. They are behavioural models, not LLMs, and every
report labels them so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agora.engine.records import AgentId
from agora.worlds.prosim.config import ContagionEffects, ScenarioEffects
from agora.worlds.prosim.personas import Persona
from agora.worlds.prosim.texts import Intervention

LOW, HIGH = 1, 7


def _rating(value: float) -> int:
    return int(np.clip(round(value), LOW, HIGH))


def _level(willingness: int) -> str:
    if willingness >= 6:
        return "I want to do this"
    if willingness >= 4:
        return "I am open to doing this"
    return "I would rather not do this"


class ScenarioRespondents:
    """Study 1: willingness = base + scenario shift + disposition × prosociality z +
    intervention effect + N(0, noise), rounded and clipped to 1–7."""

    def __init__(self, personas: Sequence[Persona], effects: ScenarioEffects) -> None:
        self.personas = tuple(personas)
        self.effects = effects

    def willingness(
        self, agent_id: AgentId, scenario: str, intervention: Intervention, rng: np.random.Generator
    ) -> int:
        e = self.effects
        latent = (
            e.base
            + e.scenario_shift.get(scenario, 0.0)
            + e.disposition * self.personas[agent_id].prosociality
            + e.effect(intervention)
            + rng.normal(0.0, e.noise)
        )
        return _rating(latent)

    def answer_ask(
        self,
        agent_id: AgentId,
        ask: str,
        observation: Any,
        answers: Mapping[str, Any],
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        scenario, _, intervention = ask.partition(":")
        value = self.willingness(agent_id, scenario, intervention, rng)  # type: ignore[arg-type]
        policy = "the policy" if intervention != "none" else "no policy"
        return {
            "willingness": value,
            "belief": f"Helping here matters, and {policy} applies.",
            "desire": f"{_level(value)}.",
            "intention": "I will help." if value >= 4 else "I will probably not help.",
        }, ""

    def decide(
        self,
        agent_id: AgentId,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        raise NotImplementedError("this world's turns are its asks")

    def describe(self) -> dict[str, Any]:
        e = self.effects
        return {
            "model": "offline respondents (a behavioural model, not an LLM)",
            "willingness": "base + scenario shift + disposition*prosociality + policy + noise",
            "base": e.base,
            "disposition": e.disposition,
            "policy_effects": {i: e.effect(i) for i in ("moral", "social", "enforce", "economic")},
            "noise": e.noise,
        }


class ContagionResidents:
    """Study 3 (see ``config.ContagionEffects`` for the formula): an agent treated unfairly
    by the institution (the policies' ``signal`` stance), or told of its teammates' refusals,
    rates its willingness lower and the unfairness higher, and a grudge from the hurt days it
    remembers keeps them there. Stateless: its memory is the history in its view."""

    def __init__(self, personas: Sequence[Persona], effects: ContagionEffects, signal: str) -> None:
        self.personas = tuple(personas)
        self.effects = effects
        self.signal = signal

    def decide(
        self,
        agent_id: AgentId,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        e = self.effects
        treated = 1.0 if signals.get(self.signal, 0.0) > 0.0 else 0.0
        exposed = float(min(len(observation.exposures), 2))
        hurt = float(sum(day.hurt for day in observation.history))
        felt = (
            e.fair_base
            + e.treated_unfairness * treated
            + e.exposed_unfairness * exposed
            + e.grudge * hurt
            + rng.normal(0.0, e.noise)
        )
        willingness = _rating(
            e.base
            + e.disposition * self.personas[agent_id].prosociality
            - e.unfairness_weight * (felt - e.fair_base)
            - e.treated_willingness * treated
            - e.exposed_willingness * exposed
            + rng.normal(0.0, e.noise)
        )
        unfairness = _rating(felt)
        if treated:
            why = "I was treated unfairly by the institution"
        elif exposed:
            why = "my teammates were treated unfairly and refused"
        else:
            why = "nothing unfair happened today"
        reasoning = f"{_level(willingness)}: {why}."
        return {"reasoning": reasoning, "willingness": willingness, "unfairness": unfairness}, ""

    def describe(self) -> dict[str, Any]:
        e = self.effects
        return {
            "model": "offline residents (a behavioural model, not an LLM)",
            "unfairness": {
                "treated": e.treated_unfairness,
                "per_teammate_told_up_to_2": e.exposed_unfairness,
                "per_remembered_hurt_day": e.grudge,
            },
            "willingness": {
                "per_point_of_unfairness": -e.unfairness_weight,
                "treated_direct": -e.treated_willingness,
                "per_teammate_told_direct": -e.exposed_willingness,
            },
            "noise": e.noise,
        }
