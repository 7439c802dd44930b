"""Policy-induced inequity (ProSim, ``../shared/specs/prosim.md``): an institution treats a
few seed agents unfairly, and tells them so, day after day.

Two treatments, as in the authors' code:

- ``economic_reward``: the top-willingness volunteers (the world's ``willingness`` score: the
  agents' first-day answers; equal ones by ``prosociality``) are told that another volunteer
  got the stipend and they got nothing;
- ``enforce_burden``: the lowest-income agents are told that a mandatory donation ignores
  their ability to pay.

``seeds`` agents are picked once, by the world's ``agent_score`` (read-only; ``rank_by`` names
one score or several, each breaking the previous one's ties, and equal ones are ordered by the
seeded stream ``inequity-seeds``; an agent without a score, one that never answered, comes
last), when the first tick it treats begins: by then a score from the agents' answers is
known (the world's ``score_known_from``, checked when the run is built), and a resume or a
replay, which rebuilds the world first, picks the same agents. They are shown the text from
``from_tick`` on. The policy speaks for the ``stance`` "inequity": the offline behaviour hears
it in its signals, and a world that reacts to what policies show (``SeesPolicies``) learns
whom it treats the same way. Each notice shown is an ``inequity_notice`` record. It shares no
state between agents (each seed sees its own notice), so it runs on any world whose agents
have scores to rank by.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
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
Order = Literal["highest", "lowest"]
# Whom each treatment picks: (the world's scores, each breaking the previous one's ties;
# highest or lowest first).
PICKS: dict[str, tuple[tuple[str, ...], Order]] = {
    "economic_reward": (("willingness", "prosociality"), "highest"),
    "enforce_burden": (("income",), "lowest"),
}


@runtime_checkable
class ScoresAgents(Protocol):
    """A world whose agents have scores a policy may rank them by (read-only).
    ``score_known_from(key)``: the first tick at which that score is known (0 for a fixed
    trait, later for one from the agents' answers); ``KeyError`` for a score it lacks."""

    def agent_score(self, agent_id: AgentId, key: str) -> float: ...

    def score_known_from(self, key: str) -> int: ...


class InequityConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "inequity"
    treatment: Treatment = "economic_reward"
    seeds: Annotated[int, msgspec.Meta(ge=0)] = 2
    from_tick: Annotated[int, msgspec.Meta(ge=0)] = 1
    # Unset: the treatment's own (``PICKS``, ``TEXTS``). rank_by: a score, or several (each
    # breaking the previous one's ties).
    rank_by: str | list[str] | None = None
    order: Order | None = None
    text: str | None = None
    stance: str = "inequity"


class InequityNotice(LogRecord, tag="inequity_notice"):
    tick: int
    agent: AgentId
    policy: str
    treatment: str


class Inequity:
    """Its one piece of state is whom it treats, picked once when ``from_tick`` begins (from
    the world as it stands then, so the same in a run, a resume and a replay); what an agent
    sees is a function of that and the tick."""

    def __init__(
        self, name: str, config: InequityConfig, pick: Callable[[], Sequence[AgentId]]
    ) -> None:
        self.name = name
        self.config = config
        self.text = config.text or TEXTS[config.treatment]
        self._pick = pick
        self._seeded: frozenset[AgentId] | None = None

    @property
    def stances(self) -> frozenset[str]:
        return frozenset({self.config.stance})

    def _seeded_at(self, tick: int) -> frozenset[AgentId]:
        """Whom it treats at ``tick``: nobody before ``from_tick``; from then on the agents
        picked the first time it is asked (never earlier, when answers are not known)."""
        if tick < self.config.from_tick:
            return frozenset()
        if self._seeded is None:
            self._seeded = frozenset(self._pick())
        return self._seeded

    def view(self, agent_id: AgentId, tick: int) -> str | None:
        return self.text if agent_id in self._seeded_at(tick) else None

    def render(self, view: Any) -> str:
        return f"What happened to you: {view}" if view else ""

    def answer_fields(self) -> Sequence[AnswerField]:
        return ()

    def absorb(
        self, tick: int, agent_id: AgentId, fields: Mapping[str, Any], view: Any
    ) -> tuple[list[LogRecord], list[str]]:
        return [], []

    def end_tick(self, tick: int) -> tuple[list[LogRecord], dict[str, Any]]:
        shown = sorted(self._seeded_at(tick))
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
        # Whom it treats follows from the world's state, which has its own digest.
        return ""


def pick_seeds(
    world: ScoresAgents,
    agents: Sequence[AgentId],
    keys: Sequence[str],
    order: Order,
    count: int,
    rng: np.random.Generator,
) -> list[AgentId]:
    """The ``count`` agents with the highest (lowest) scores, compared key by key; a missing
    score (NaN) ranks last; what is still equal, in a seeded order."""
    tiebreak = rng.permutation(len(agents))
    sign = -1.0 if order == "highest" else 1.0

    def rank(i: int) -> tuple[Any, ...]:
        scores = [world.agent_score(agents[i], key) for key in keys]
        return (*((math.isnan(v), sign * v if not math.isnan(v) else 0.0) for v in scores),)

    ranked = sorted(range(len(agents)), key=lambda i: (rank(i), tiebreak[i]))
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
        keys, order = PICKS[settings.treatment]
        if settings.rank_by is not None:
            keys = (
                (settings.rank_by,)
                if isinstance(settings.rank_by, str)
                else tuple(settings.rank_by)
            )
        if not keys:
            raise ConfigError(f'{field}.rank_by: empty; name a score, e.g. "income"')
        order = settings.order or order
        known = 0
        for key in keys:
            try:
                known = max(known, world.score_known_from(key))
            except KeyError:
                raise ConfigError(
                    f"{field}.rank_by: the world has no score {key!r}; use income, "
                    "prosociality, willingness or a trait key"
                ) from None
        if known > settings.from_tick:
            raise ConfigError(
                f"{field}.from_tick: {settings.from_tick}, but {', '.join(keys)} is known only "
                f"from tick {known} (the agents' answers); set from_tick = {known} or more"
            )
        if known > 0 and getattr(world, "independent", False):
            raise ConfigError(
                f"{field}.rank_by: {', '.join(keys)} comes from the agents' answers, which an "
                "independent world does not have at one moment; rank by a persona's score"
            )
        rng = seeds.rng("inequity-seeds")
        count = settings.seeds
        return Inequity(name, settings, lambda: pick_seeds(world, agents, keys, order, count, rng))


PLUGIN = InequityPlugin()
