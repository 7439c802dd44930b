"""A nudge: one line of text every agent is shown each tick, and nothing flows back.

The smallest institution a world can be run under (a norm reminder, a framing), and the
guide's example policy. It shares no state between agents, so it runs on independent worlds
too. Its ``stance`` is what the offline behaviour is told the line speaks for (``signals``),
so offline agents can respond to it as they do to a board; the line's words are the config's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from agora.engine.protocols import AnswerField, World
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds


class NudgeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "nudge"
    text: str = "Most people here share with their neighbours."
    # The stance the line speaks for, as the offline behaviour's signals name it.
    stance: str = "generous"
    # From which tick on the line is shown (an intervention that starts mid-run).
    from_tick: int = 0


class Nudge:
    """Holds no state: what an agent sees is a function of the tick alone (``view`` is called
    by runs, replays and renderings alike, in whatever order, and must change nothing)."""

    def __init__(self, name: str, config: NudgeConfig) -> None:
        self.name = name
        self.config = config

    def view(self, agent_id: AgentId, tick: int) -> str | None:
        return self.config.text if tick >= self.config.from_tick else None

    def render(self, view: Any) -> str:
        return f"A note from the organisers: {view}" if view else ""

    def answer_fields(self) -> Sequence[AnswerField]:
        return ()

    def absorb(
        self, tick: int, agent_id: AgentId, fields: Mapping[str, Any], view: Any
    ) -> tuple[list[LogRecord], list[str]]:
        return [], []

    def end_tick(self, tick: int) -> tuple[list[LogRecord], dict[str, Any]]:
        return [], {"shown": tick >= self.config.from_tick}

    def offline_fields(
        self, agent_id: AgentId, view: Any, stance: str, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {}

    def offline_signals(self, view: Any) -> Mapping[str, float]:
        return {self.config.stance: 1.0} if view else {}

    def digest(self) -> str:
        return ""  # no state of its own


class NudgePlugin:
    name = "nudge"
    config_type = NudgeConfig
    shares_state = False

    def build(self, config: Any, seeds: Seeds, name: str, world: World) -> Nudge:
        return Nudge(name, config)


PLUGIN = NudgePlugin()
