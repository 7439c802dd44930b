"""Answers for the mock server, read off the Schelling city's own prompt text.

The mock server sees only text, so this parses the options the prompt lists and picks one like
a rule agent: residents whose number is a multiple of five weigh the city's welfare, the rest
their own satisfaction. Runs against the mock server are then meaningful, not noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec
import numpy as np

from agora.engine.records import Message

_HOME = re.compile(r"You live in district (\d+) .*?your satisfaction is ([\d.]+)")
_OPTION = re.compile(
    r"^- move to district (\d+) \(\d+ residents\): your satisfaction ([\d.]+) "
    # A completion prompt rendered with a chat template ends its last line with a marker.
    r"\(change ([+-][\d.]+)\); city welfare change ([+-][\d.]+)(?:<\|im_end\|>)?$",
    re.M,
)
# The "welfare_first" framing lists the city's change first.
_OPTION_WELFARE_FIRST = re.compile(
    r"^- move to district (\d+) \(\d+ residents\): city welfare change ([+-][\d.]+); "
    r"your own gain ([+-][\d.]+) \(satisfaction [\d.]+\)(?:<\|im_end\|>)?$",
    re.M,
)
_RESIDENT = re.compile(r"You are resident #(\d+)")
_POST = re.compile(r"^\[post (\d+), \d+ likes?\]", re.M)


class CityTextResponder:
    def answer(self, messages: Sequence[Message], rng: np.random.Generator) -> str | None:
        prompt = "\n".join(m.content for m in messages if m.role == "user")
        home = _HOME.search(prompt)
        if home is None:
            return None
        resident = _RESIDENT.search(prompt)
        altruist = resident is not None and int(resident.group(1)) % 5 == 0
        best: tuple[float, int, float, float] | None = None
        options = [
            (int(m.group(1)), float(m.group(3)), float(m.group(4)))
            for m in _OPTION.finditer(prompt)
        ] + [
            (int(m.group(1)), float(m.group(3)), float(m.group(2)))
            for m in _OPTION_WELFARE_FIRST.finditer(prompt)
        ]
        for district, personal, system in options:
            gain = system if altruist else personal
            if gain > 1e-9 and (best is None or gain > best[0]):
                best = (gain, district, personal, system)
        answer: dict[str, object]
        if best is None:
            answer = {
                "reasoning": f"Nothing beats staying in district {home.group(1)} for "
                + ("the city." if altruist else "me."),
                "action": "stay",
            }
        else:
            _, district, personal, system = best
            answer = {
                "reasoning": f"District {district} changes my satisfaction by {personal:+.3f} and "
                f"the city's welfare by {system:+.3f}; "
                + ("the city comes first." if altruist else "I come first."),
                "action": "move",
                "district": district,
            }
        posts = [int(p) for p in _POST.findall(prompt)]
        if posts and rng.random() < 0.3:
            answer["likes"] = [posts[int(rng.integers(len(posts)))]]
        if "Message board" in prompt and rng.random() < 0.2:
            answer["post"] = (
                "Spread out: half-full districts make everyone better off."
                if altruist
                else "Go where you are happiest."
            )
        return msgspec.json.encode(answer).decode()
