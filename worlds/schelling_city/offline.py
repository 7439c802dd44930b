"""Rule agents for the offline backend: Grauwin/Jensen egoists and altruists with logit noise.

An egoist weighs each choice by its change in personal utility, an altruist by its change in
system utility; with temperature T the choice is a softmax over the gains, with T = 0 the best
gain is taken if it is positive. The reasoning text states the numbers the choice was made on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worlds.schelling_city.config import OfflineMix
from worlds.schelling_city.world import CityView

EGOIST, ALTRUIST = "egoist", "altruist"


class RuleResidents:
    def __init__(self, mix: OfflineMix, agents: int, rng: np.random.Generator) -> None:
        self.mix = mix
        altruists = round(mix.altruist_fraction * agents)
        chosen: list[int] = (
            [int(a) for a in rng.choice(agents, size=altruists, replace=False)] if altruists else []
        )
        self.stances = [EGOIST] * agents
        for agent in chosen:
            self.stances[int(agent)] = ALTRUIST

    def describe(self) -> dict[str, Any]:
        altruists = [agent for agent, stance in enumerate(self.stances) if stance == ALTRUIST]
        return {
            "model": "rule residents (Grauwin/Jensen)",
            "temperature": self.mix.temperature,
            "altruist_fraction": self.mix.altruist_fraction,
            "altruists": altruists,
        }

    def decide(
        self, agent_id: int, observation: Any, rng: np.random.Generator
    ) -> tuple[dict[str, Any], str]:
        view: CityView = observation
        stance = self.stances[agent_id]
        options = [o for o in view.options if not o.full]
        gains = np.array(
            [0.0] + [o.delta_system if stance == ALTRUIST else o.delta_personal for o in options]
        )
        choice = self._choose(gains, rng)
        if choice == 0:
            fields: dict[str, Any] = {"reasoning": _stay_reason(view, stance), "action": "stay"}
        else:
            option = options[choice - 1]
            fields = {
                "reasoning": _move_reason(view, stance, option),
                "action": "move",
                "district": option.district,
            }
        return fields, stance

    def _choose(self, gains: np.ndarray, rng: np.random.Generator) -> int:
        temperature = self.mix.temperature
        if temperature > 0:
            logits = (gains - gains.max()) / temperature
            weights = np.exp(logits)
            return int(rng.choice(gains.size, p=weights / weights.sum()))
        best = gains.max()
        if best <= 1e-12:
            return 0
        ties = np.flatnonzero(gains >= best - 1e-12)
        return int(rng.choice(ties))


def _stay_reason(view: CityView, stance: str) -> str:
    if stance == ALTRUIST:
        return (
            f"I live in district {view.district} with satisfaction {view.utility:.3f}. "
            "No move would raise the city's total welfare enough, so staying serves everyone best."
        )
    return (
        f"I live in district {view.district} with satisfaction {view.utility:.3f}. "
        "No other district would make me more satisfied, so I stay."
    )


def _move_reason(view: CityView, stance: str, option: Any) -> str:
    if stance == ALTRUIST:
        cost = (
            f"even though my own satisfaction changes by {option.delta_personal:+.3f}"
            if option.delta_personal < 0
            else f"and my own satisfaction changes by {option.delta_personal:+.3f}"
        )
        return (
            f"Moving from district {view.district} to district {option.district} changes the "
            f"city's welfare by {option.delta_system:+.3f}, {cost}. The common good comes first."
        )
    return (
        f"Moving from district {view.district} to district {option.district} raises my "
        f"satisfaction from {view.utility:.3f} to {option.utility:.3f}; the city's welfare "
        f"changes by {option.delta_system:+.3f}. My own comfort comes first."
    )
