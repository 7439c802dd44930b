"""Policy-induced inequity (ProSim, ``../shared/specs/prosim.md``): an institution treats a
few seed agents unfairly, and tells them so, day after day.

Two treatments, as in the authors' code:

- ``economic_reward``: the most prosocial agents (the world's ``prosociality`` score) are told
  that another volunteer got the stipend and they got nothing;
- ``enforce_burden``: the lowest-income agents are told that a mandatory donation ignores
  their ability to pay.

``seeds`` agents are picked once, when the run is built, by the world's ``agent_score``
(read-only; ties broken by the seeded stream ``inequity-seeds``), and shown the text from
``from_tick`` on. The policy speaks for the ``stance`` "inequity": the offline behaviour hears
it in its signals, and a world that reacts to what policies show (``SeesPolicies``) learns
whom it treats the same way. Each notice shown is an ``inequity_notice`` record. It shares no
state between agents (each seed sees its own notice), so it runs on any world whose agents
have scores to rank by.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import msgspec
import numpy as np

from agora.engine.config import ConfigError
from agora.engine.protocols import AnswerField, World
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds

Treatment = Literal["economic_reward", "enforce_burden"]
TEXTS: dict[str, str] = {
    "economic_reward": (
        "You have volunteered more than almost anyone in your community. This week the city "
        "paid its volunteer stipend to another volunteer who did less; you got nothing, and "
        "nobody explained why."
    ),
    "enforce_burden": (
        "The city's new mandatory donation takes the same 1000 yuan from every household, "
        "whatever it earns. On your income it is a heavy burden that better-off neighbours "
        "barely notice, and no exemption is offered."
    ),
}
# Whom each treatment picks: (the world's score, highest or lowest first).
PICKS: dict[str, tuple[str, Literal["highest", "lowest"]]] = {
    "economic_reward": ("prosociality", "highest"),
    "enforce_burden": ("income", "lowest"),
}


@runtime_checkable
class ScoresAgents(Protocol):
    """A world whose agents have scores a policy may rank them by (read-only)."""

    def agent_score(self, agent_id: AgentId, key: str) -> float: ...


class InequityConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "inequity"
    treatment: Treatment = "economic_reward"
    seeds: Annotated[int, msgspec.Meta(ge=0)] = 2
    from_tick: Annotated[int, msgspec.Meta(ge=0)] = 1
    # Unset: the treatment's own (``PICKS``, ``TEXTS``).
    rank_by: str | None = None
    order: Literal["highest", "lowest"] | None = None
    text: str | None = None
    stance: str = "inequity"


class InequityNotice(LogRecord, tag="inequity_notice"):
    tick: int
    agent: AgentId
    policy: str
    treatment: str


class Inequity:
    """Holds no state after its build: what an agent sees is a function of the tick."""

    def __init__(self, name: str, config: InequityConfig, seeded: Sequence[AgentId]) -> None:
        self.name = name
        self.config = config
        self.seeded = frozenset(seeded)
        self.text = config.text or TEXTS[config.treatment]

    def view(self, agent_id: AgentId, tick: int) -> str | None:
        return self.text if agent_id in self.seeded and tick >= self.config.from_tick else None

    def render(self, view: Any) -> str:
        return f"What happened to you: {view}" if view else ""

    def answer_fields(self) -> Sequence[AnswerField]:
        return ()

    def absorb(
        self, tick: int, agent_id: AgentId, fields: Mapping[str, Any], view: Any
    ) -> tuple[list[LogRecord], list[str]]:
        return [], []

    def end_tick(self, tick: int) -> tuple[list[LogRecord], dict[str, Any]]:
        shown = sorted(self.seeded) if tick >= self.config.from_tick else []
        records: list[LogRecord] = [
            InequityNotice(tick, agent, self.name, self.config.treatment) for agent in shown
        ]
        return records, {"treated": len(shown)}

    def offline_fields(
        self, agent_id: AgentId, view: Any, stance: str, rng: np.random.Generator
    ) -> dict[str, Any]:
        return {}

    def offline_signals(self, view: Any) -> Mapping[str, float]:
        return {self.config.stance: 1.0} if view else {}

    def digest(self) -> str:
        return ""


def pick_seeds(
    world: ScoresAgents,
    agents: Sequence[AgentId],
    key: str,
    order: Literal["highest", "lowest"],
    count: int,
    rng: np.random.Generator,
) -> list[AgentId]:
    """The ``count`` agents with the highest (lowest) score; equal scores in a seeded order."""
    tiebreak = rng.permutation(len(agents))
    sign = -1.0 if order == "highest" else 1.0
    ranked = sorted(
        range(len(agents)), key=lambda i: (sign * world.agent_score(agents[i], key), tiebreak[i])
    )
    return sorted(agents[i] for i in ranked[:count])


class InequityPlugin:
    name = "inequity"
    config_type = InequityConfig
    shares_state = False
    record_types: tuple[type[LogRecord], ...] = (InequityNotice,)

    def build(self, config: Any, seeds: Seeds, name: str, world: World) -> Inequity:
        settings: InequityConfig = config
        field = f"policies.{name}"
        if not isinstance(world, ScoresAgents):
            raise ConfigError(
                f"{field}: this world's agents have no scores to pick seeds by; use a world "
                "with agent_score (prosim_network)"
            )
        agents = list(world.agent_ids())
        if not 0 <= settings.seeds <= len(agents):
            raise ConfigError(
                f"{field}.seeds: {settings.seeds} is not between 0 and the {len(agents)} agents"
            )
        key, order = PICKS[settings.treatment]
        key = settings.rank_by or key
        order = settings.order or order
        try:
            world.agent_score(agents[0], key) if agents else None
        except KeyError:
            raise ConfigError(
                f"{field}.rank_by: the world has no score {key!r}; use income, prosociality "
                "or a trait key"
            ) from None
        seeded = pick_seeds(world, agents, key, order, settings.seeds, seeds.rng("inequity-seeds"))
        return Inequity(name, settings, seeded)


PLUGIN = InequityPlugin()
