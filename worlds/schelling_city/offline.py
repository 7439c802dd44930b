"""Rule agents for the offline backend: Grauwin/Jensen egoists and altruists with logit noise.

An egoist weighs each choice by its change in personal utility, an altruist by its change in
system utility; with temperature T the choice is a softmax over the gains, with T = 0 the best
gain is taken if it is positive. The reasoning text states the numbers the choice was made on.

Two more knobs make the experiment's archetypes reachable offline: ``board_susceptibility`` lets
an egoist take up the board's call for the common good (the Adaptive Egoist: altruistic acts
rise with the board), and ``inertia`` staggers decisions so that altruists settle on the optimum
instead of overshooting together (the Altruistic Optimizer, board or not).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from agora.worlds.schelling_city.config import OfflineMix
from agora.worlds.schelling_city.world import CityView, Option

EGOIST, ALTRUIST = "egoist", "altruist"
# An egoist who, this once, weighs the choice by the city's welfare because the board asked.
PERSUADED = "persuaded"


class RuleResidents:
    def __init__(self, mix: OfflineMix, agents: int, rng: np.random.Generator) -> None:
        self.mix = mix
        altruists = round(mix.altruist_fraction * agents)
        chosen: list[int] = (
            [int(a) for a in rng.choice(agents, size=altruists, replace=False)] if altruists else []
        )
        self.stances = [EGOIST] * agents
        self._menus: dict[tuple[int, bool], _Menu] = {}
        for agent in chosen:
            self.stances[int(agent)] = ALTRUIST

    def describe(self) -> dict[str, Any]:
        altruists = [agent for agent, stance in enumerate(self.stances) if stance == ALTRUIST]
        return {
            "model": "rule residents (Grauwin/Jensen)",
            "temperature": self.mix.temperature,
            "altruist_fraction": self.mix.altruist_fraction,
            "board_susceptibility": self.mix.board_susceptibility,
            "inertia": self.mix.inertia,
            "anticipation": self.mix.anticipation,
            "altruists": altruists,
        }

    def decide(
        self,
        agent_id: int,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        view: CityView = observation
        stance = self.stances[agent_id]
        mix = self.mix
        # Draws are made whether or not a knob is set, so turning one leaves the others' streams.
        pause, persuaded = rng.random(), rng.random()
        if pause < mix.inertia:
            return {"reasoning": _pause_reason(view), "action": "stay"}, stance
        criterion = stance
        if stance == EGOIST and persuaded < mix.board_susceptibility * signals.get(ALTRUIST, 0.0):
            criterion = PERSUADED
        menu = self._menu(view.options, by_welfare=criterion != EGOIST)
        options = menu.options
        if criterion == ALTRUIST and mix.anticipation:
            choice = _anticipating_choice(view, menu, rng)
        else:
            choice = self._choose(menu, rng)
        if choice == 0:
            fields: dict[str, Any] = {"reasoning": _stay_reason(view, criterion), "action": "stay"}
        else:
            option = options[choice - 1]
            fields = {
                "reasoning": _move_reason(view, criterion, option),
                "action": "move",
                "district": option.district,
            }
        # A persuaded egoist speaks for the common good on the board too: the norm spreads.
        return fields, ALTRUIST if criterion == PERSUADED else stance

    def _menu(self, options: tuple[Option, ...], by_welfare: bool) -> _Menu:
        # Everyone in a district shares one options tuple per tick (the world hands them out),
        # so the sums behind a choice are made once per district, not once per resident.
        key = (id(options), by_welfare)
        cached = self._menus.get(key)
        if cached is not None and cached.source is options:
            return cached
        if len(self._menus) > 4096:
            self._menus.clear()
        menu = _Menu.of(options, by_welfare, self.mix.temperature)
        self._menus[key] = menu
        return menu

    def _choose(self, menu: _Menu, rng: np.random.Generator) -> int:
        if menu.cumulative is not None:
            return int(np.searchsorted(menu.cumulative, rng.random(), side="right"))
        if not menu.best:
            return 0
        if len(menu.best) == 1:
            return menu.best[0]
        return menu.best[int(rng.random() * len(menu.best))]


@dataclass(frozen=True)
class _Menu:
    """The open options of a district and what a rule agent needs to choose among them.

    Index 0 is staying (gain 0); option ``i`` is ``options[i - 1]``.
    """

    source: tuple[Option, ...]
    options: tuple[Option, ...]
    gains: np.ndarray
    best: tuple[int, ...]  # the choices with the highest positive gain (T = 0)
    cumulative: np.ndarray | None  # softmax cumulative weights (T > 0)

    @classmethod
    def of(cls, source: tuple[Option, ...], by_welfare: bool, temperature: float) -> _Menu:
        options = tuple(o for o in source if not o.full)
        gains = np.array(
            [0.0] + [o.delta_system if by_welfare else o.delta_personal for o in options]
        )
        top = float(gains.max())
        best = tuple(int(i) for i in np.flatnonzero(gains >= top - 1e-12)) if top > 1e-12 else ()
        cumulative = None
        if temperature > 0:
            weights = np.exp((gains - top) / temperature)
            cumulative = np.cumsum(weights / weights.sum())
            cumulative[-1] = 1.0
        return cls(source, options, gains, best, cumulative)


def _anticipating_choice(view: CityView, menu: _Menu, rng: np.random.Generator) -> int:
    """Leave with the chance the district's excess calls for, to a gain-weighted destination."""
    leave, pick = rng.random(), rng.random()
    positive = np.clip(menu.gains, 0.0, None)
    positive[0] = 0.0
    total = positive.sum()
    if total <= 1e-12:
        return 0
    here = view.populations[view.district - 1]
    excess = here - view.capacity / 2
    # Below half full a district has no excess to shed; about one of its residents tries.
    share = excess / here if excess > 0 else 1 / here
    if leave >= share:
        return 0
    return int(np.searchsorted(np.cumsum(positive) / total, pick, side="right"))


def _pause_reason(view: CityView) -> str:
    return (
        f"I live in district {view.district} with satisfaction {view.utility:.3f}. "
        "Many others are deciding at the same time, so I wait this round and see how the "
        "districts settle before I move."
    )


def _stay_reason(view: CityView, stance: str) -> str:
    if stance == PERSUADED:
        return (
            f"I live in district {view.district} with satisfaction {view.utility:.3f}. "
            "The board asks us to think of the whole city; no move would raise its welfare, "
            "so I stay."
        )
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
    if stance == PERSUADED:
        return (
            f"The posts on the board ask us to think of the whole city. Moving from district "
            f"{view.district} to district {option.district} changes the city's welfare by "
            f"{option.delta_system:+.3f} and my own satisfaction by {option.delta_personal:+.3f}; "
            "I will follow the board's advice this time."
        )
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
