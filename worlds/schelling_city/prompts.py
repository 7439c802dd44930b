"""The Schelling city's words: rules, views, the answer format, and reading an answer."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from agora.engine.protocols import AnswerField
from agora.worlds.schelling_city.world import (
    CityView,
    MoveOutcome,
    Option,
    Relocation,
    SchellingCity,
)

_DISTRICT = re.compile(r"(?:district|d)?\s*#?\s*(-?\d+)", re.I)
_DISTRICT_KEYS = ("district", "move_to", "to", "destination", "target")

# A reasoning is a few sentences: the cap keeps a constrained model from running on to
# max_tokens inside the string (the prompt's words say the same, more softly).
REASONING_CHARS = 600


def answer_fields(districts: int) -> tuple[AnswerField, ...]:
    return (
        AnswerField(
            "reasoning",
            "a few sentences on why you choose this",
            schema={"type": "string", "minLength": 1, "maxLength": REASONING_CHARS},
        ),
        AnswerField("action", '"stay" or "move"', schema={"enum": ["stay", "move"]}),
        AnswerField(
            "district",
            "the district number you move to (only when moving)",
            required=False,
            schema={"type": "integer", "minimum": 1, "maximum": districts},
        ),
    )


class CityPrompts:
    def __init__(self, city: SchellingCity) -> None:
        self.city = city
        self._answer_fields = answer_fields(city.config.districts)
        self._shared: tuple[int, str] | None = None
        # Everyone in a district has the same options (the world hands out one tuple per
        # district and state), so their text is rendered once per district, not per agent.
        self._options_text: dict[int, tuple[tuple[Option, ...], str]] = {}

    def persona(self) -> str:
        return "You are resident #{agent}."

    def rules(self) -> str:
        c = self.city.config
        return (
            f"You are a resident of a city with {c.districts} districts, numbered 1 to "
            f"{c.districts}. Each district has room for {c.cells_per_district} residents; "
            f"{c.agents} residents live in the city.\n"
            "Each round, every resident may stay or move to another district that has room.\n"
            "A resident's satisfaction depends only on the density of their district "
            "(residents divided by room): it rises from 0 in an empty district to 1 when the "
            f"district is exactly half full, then falls as it gets more crowded, to {c.m:g} "
            "when it is completely full.\n"
            "The city's welfare is the sum of every resident's satisfaction. A move changes "
            "your own satisfaction and that of the residents of the district you leave and of "
            "the district you join, so it changes the city's welfare too.\n"
            "All residents decide at the same time. If more residents try to move into a "
            "district than it has free room, a random subset of them gets in and the others "
            "stay where they are."
        )

    def shared_view(self, tick: int) -> str:
        # The same text for every agent of the tick: built once, and placed before anything
        # agent-specific so a server's prefix cache can reuse it.
        if self._shared is not None and self._shared[0] == tick:
            return self._shared[1]
        capacity = self.city.capacity
        lines = [f"Round {tick + 1}. The districts now:"]
        for index, population in enumerate(self.city.populations):
            lines.append(
                f"- district {index + 1}: {int(population)} residents "
                f"(density {int(population) / capacity:.2f})"
            )
        text = "\n".join(lines)
        self._shared = (tick, text)
        return text

    def private_view(self, agent_id: int, observation: Any) -> str:
        view: CityView = observation
        here = view.populations[view.district - 1]
        head = (
            f"You live in district {view.district} ({here} residents, density "
            f"{here / view.capacity:.2f}); your satisfaction is {view.utility:.3f}.\n"
        )
        return head + self._render_options(view)

    def _render_options(self, view: CityView) -> str:
        cached = self._options_text.get(view.district)
        if cached is not None and cached[0] is view.options:
            return cached[1]
        welfare_first = self.city.config.framing == "welfare_first"
        lines = ["What each choice would do, computed on the districts as they are now:"]
        if welfare_first:
            lines.append(
                "- stay: city welfare change +0.000; your own gain +0.000 "
                f"(satisfaction {view.utility:.3f})"
            )
        else:
            lines.append(
                f"- stay: your satisfaction {view.utility:.3f} (change +0.000); "
                "city welfare change +0.000"
            )
        for option in view.options:
            if option.full:
                lines.append(f"- move to district {option.district}: full, no room")
            elif welfare_first:
                lines.append(
                    f"- move to district {option.district} ({option.population} residents): "
                    f"city welfare change {option.delta_system:+.3f}; your own gain "
                    f"{option.delta_personal:+.3f} (satisfaction {option.utility:.3f})"
                )
            else:
                lines.append(
                    f"- move to district {option.district} ({option.population} residents): "
                    f"your satisfaction {option.utility:.3f} "
                    f"(change {option.delta_personal:+.3f}); "
                    f"city welfare change {option.delta_system:+.3f}"
                )
        text = "\n".join(lines)
        self._options_text[view.district] = (view.options, text)
        return text

    def render_state(self) -> str:
        """The city as a map of districts (3 × 3 by default) with their populations."""
        layout = self.city.describe()["layout"]
        rows, columns = layout
        capacity = self.city.capacity
        cells = [
            f"D{i + 1}: {int(n):>3} ({int(n) / capacity:.2f})"
            for i, n in enumerate(self.city.populations)
        ]
        width = max(len(c) for c in cells)
        lines = []
        for row in range(rows):
            chunk = cells[row * columns : (row + 1) * columns]
            lines.append(" | ".join(c.ljust(width) for c in chunk))
        return "\n".join(lines)

    def answer_fields(self) -> Sequence[AnswerField]:
        return self._answer_fields

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Relocation:
        view: CityView = observation
        action = answer.get("action")
        district = next((answer[k] for k in _DISTRICT_KEYS if answer.get(k) is not None), None)
        if action is None and district is None:
            raise ValueError('the answer has no "action"')
        verb = str(action if action is not None else "move").strip().lower()
        if verb.startswith("stay"):
            return Relocation(move_to=None)
        if not verb.startswith("move"):
            raise ValueError(f'action {action!r} is neither "stay" nor "move"')
        if district is None:
            # "move to district 4" in the action itself.
            district = verb[4:] or None
        if district is None:
            raise ValueError('a "move" needs a "district"')
        number = _district_number(district)
        count = len(view.populations)
        if number is None:
            raise ValueError(f"district {district!r} is not a district number")
        if not 1 <= number <= count:
            raise ValueError(f"district {number} does not exist (districts are 1 to {count})")
        if number == view.district:
            return Relocation(move_to=None)
        return Relocation(move_to=number)

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        result: MoveOutcome = outcome
        if result.wanted is None:
            what = f"you stayed in district {result.district}"
        elif result.moved:
            what = f"you moved to district {result.district}"
        elif result.blocked:
            what = f"you tried to move to district {result.wanted} but it was full; you stayed"
        else:
            what = f"you stayed in district {result.district}"
        return (
            f"round {tick + 1}: {what}; your satisfaction went from {result.utility_before:.3f} "
            f"to {result.utility_after:.3f}."
        )


def _district_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    match = _DISTRICT.search(str(value))
    return int(match.group(1)) if match else None
