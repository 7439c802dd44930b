"""The guide's example world: gifts and messages along the edges of a small-world network.

Players sit on a Watts–Strogatz graph. Each tick every player gets ``endowment`` coins and
makes a two-ask turn: first the gift (to which neighbour, how many coins, and why), then, in
prose, the message that goes with it. A gift is multiplied on arrival (``multiplier``, as in a
trust game); the message reaches the neighbour's inbox for the next tick, so players share
state and the world runs in lockstep. Every delivered message is also logged as a record of
the world's own kind, ``gift_message``.

The offline stand-in gives a seeded share of its coins, leaning on its generosity, on what
its policies say (a nudge) and on who was kind to it before: warmth it keeps per neighbour,
learnt from the outcomes it is told, so a resumed run rebuilds it. It is a behavioural model,
not a model's behaviour.

``docs/writing-a-world.md`` walks through this file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
import networkx as nx
import numpy as np

from agora.engine.protocols import AnswerField, Ask, AskNow, Missed, WorldParts
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds

MESSAGE_CHARS = 280


class GiftNetworkConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "gift_network"
    agents: Annotated[int, msgspec.Meta(ge=3)] = 12
    # Each player's neighbours before rewiring (even), and the chance an edge is rewired.
    neighbours: Annotated[int, msgspec.Meta(ge=2)] = 4
    rewire: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.1
    endowment: Annotated[int, msgspec.Meta(ge=1)] = 10
    multiplier: Annotated[float, msgspec.Meta(ge=0.0)] = 2.0


# ---- the data that crosses the engine: observations, actions, outcomes, records ------------


class Note(msgspec.Struct, frozen=True):
    sender: AgentId
    coins: int
    text: str


class GiftView(msgspec.Struct, frozen=True):
    tick: int
    neighbours: tuple[AgentId, ...]
    endowment: int
    inbox: tuple[Note, ...]


class Gift(msgspec.Struct, frozen=True):
    to: AgentId
    coins: int
    message: str


class Given(msgspec.Struct, frozen=True):
    """What a giver learns at the tick's end: its gift, and what its neighbours sent it."""

    to: AgentId
    coins: int
    received: dict[AgentId, int]


class GiftMessage(LogRecord, tag="gift_message"):
    """A message delivered along an edge, with the coins it came with (before multiplying)."""

    tick: int
    sender: AgentId
    recipient: AgentId
    coins: int
    text: str


# ---- the world -----------------------------------------------------------------------------


class GiftNetwork:
    independent = False  # a message reaches another player's next view

    def __init__(self, config: GiftNetworkConfig, graph: nx.Graph) -> None:
        self.config = config
        self.graph = graph
        self.neighbours = {a: tuple(sorted(graph.neighbors(a))) for a in range(config.agents)}
        self.wealth = [0.0] * config.agents
        self.inbox: dict[AgentId, tuple[Note, ...]] = {a: () for a in range(config.agents)}
        self.given: list[dict[str, float]] = []  # per tick: gifts, coins given, missed
        # The messages of each tick, until the engine takes them as the tick closes.
        self.pending: dict[int, list[LogRecord]] = {}

    def agent_ids(self) -> Sequence[AgentId]:
        return tuple(range(self.config.agents))

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[AgentId]:
        return self.agent_ids()

    def observe(self, agent_id: AgentId, tick: int) -> GiftView:
        return GiftView(
            tick, self.neighbours[agent_id], self.config.endowment, self.inbox[agent_id]
        )

    def annotate(self, agent_id: AgentId, observation: Any, action: Any) -> dict[str, Any]:
        return {"inbox": len(observation.inbox)}

    def apply(
        self,
        tick: int,
        actions: Mapping[AgentId, Any],
        rng: np.random.Generator,
        missed: Mapping[AgentId, Missed],
    ) -> dict[AgentId, Any]:
        inbox: dict[AgentId, list[Note]] = {a: [] for a in self.agent_ids()}
        for agent in self.agent_ids():
            # Every player gets the endowment; a missed turn keeps it all.
            self.wealth[agent] += self.config.endowment
        for giver, gift in actions.items():
            self.wealth[giver] -= gift.coins
            self.wealth[gift.to] += gift.coins * self.config.multiplier
            inbox[gift.to].append(Note(giver, gift.coins, gift.message))
            message = GiftMessage(tick, giver, gift.to, gift.coins, gift.message)
            self.pending.setdefault(tick, []).append(message)
        self.inbox = {a: tuple(notes) for a, notes in inbox.items()}
        coins = sum(g.coins for g in actions.values())
        self.given.append({"gifts": len(actions), "coins_given": coins, "missed": len(missed)})
        return {
            giver: Given(gift.to, gift.coins, {n.sender: n.coins for n in self.inbox[giver]})
            for giver, gift in actions.items()
        }

    def tick_records(self, tick: int) -> list[LogRecord]:
        """The tick's delivered messages, as records of this world's own kind (declared by the
        plug-in's ``record_types``), logged with the tick's end."""
        return self.pending.pop(tick, [])

    def metrics(self, tick: int) -> dict[str, Any]:
        given = self.given[tick]
        gifts = int(given["gifts"])
        return {
            "gifts": gifts,
            "missed": int(given["missed"]),
            "mean_gift": round(given["coins_given"] / gifts, 4) if gifts else None,
            "mean_wealth": round(float(np.mean(self.wealth)), 4),
        }

    def digest(self, tick: int) -> str:
        state = msgspec.json.encode([self.wealth, sorted(self.inbox.items())])
        return hashlib.blake2b(state, digest_size=16).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "agents": self.config.agents,
            "edges": self.graph.number_of_edges(),
            "clustering": round(nx.average_clustering(self.graph), 4),
        }


# ---- its words: a two-ask turn ---------------------------------------------------------------


class GiftPrompts:
    def __init__(self, config: GiftNetworkConfig) -> None:
        self.config = config

    def rules(self) -> str:
        c = self.config
        return (
            f"You are one of {c.agents} players in a network. Each round you get "
            f"{c.endowment} coins and may give some of them to one of your neighbours; every "
            f"coin you give is worth {c.multiplier:g} coins to them. You keep what you do not "
            "give. A short message goes with each gift."
        )

    def persona(self) -> str:
        return "You are player #{agent}."

    def shared_view(self, tick: int) -> str:
        return f"Round {tick + 1}."

    def private_view(self, agent_id: AgentId, observation: Any) -> str:
        view: GiftView = observation
        lines = [f"Your neighbours: {', '.join(f'#{n}' for n in view.neighbours)}."]
        if view.inbox:
            lines.append("Last round you received:")
            lines += [f'- {n.coins} coins from #{n.sender}: "{n.text}"' for n in view.inbox]
        else:
            lines.append("Last round nobody gave you anything.")
        return "\n".join(lines)

    # A world of multi-ask turns declares its asks; these two are its whole protocol.
    def asks(self) -> Sequence[Ask]:
        number = {"type": "integer", "minimum": 0}
        return (
            Ask(
                "gift",
                (
                    AnswerField("reasoning", "why you give what you give"),
                    AnswerField("to", "the neighbour's number", schema=number),
                    AnswerField("coins", "how many coins you give", schema=number),
                ),
                reasoning=True,
                policies=True,
            ),
            Ask("message", (), max_reasks=1, free_text=True),
        )

    def next_ask(self, observation: Any, answers: Mapping[str, Any]) -> AskNow | None:
        if "gift" not in answers:
            return AskNow("gift", f"You have {self.config.endowment} coins. Whom do you give to?")
        if "message" not in answers:
            gift = answers["gift"]
            return AskNow(
                "message",
                f"Write the message that goes with your {gift['coins']} coins to "
                f"#{gift['to']}: one or two sentences of plain text, at most "
                f"{MESSAGE_CHARS} characters.",
            )
        return None

    def decode_ask(
        self, name: str, answer: Mapping[str, Any], observation: Any, answers: Mapping[str, Any]
    ) -> Any:
        view: GiftView = observation
        if name == "message":
            text = str(answer["text"])
            if len(text) > MESSAGE_CHARS:
                raise ValueError(f"the message has {len(text)} characters, over {MESSAGE_CHARS}")
            return text
        to, coins = answer.get("to"), answer.get("coins")
        # JSON's true is a Python int: refused, or the log would hold a gift of `true` coins.
        if not isinstance(to, int) or isinstance(to, bool) or to not in view.neighbours:
            raise ValueError(f"#{to} is not one of your neighbours ({list(view.neighbours)})")
        if (
            not isinstance(coins, int)
            or isinstance(coins, bool)
            or not 0 <= coins <= view.endowment
        ):
            raise ValueError(f"coins {coins!r} is not a whole number from 0 to {view.endowment}")
        return {"to": to, "coins": coins}

    def decode_turn(self, observation: Any, answers: Mapping[str, Any]) -> Gift:
        gift = answers["gift"]
        return Gift(gift["to"], gift["coins"], answers["message"])

    # One-ask worlds answer with these; a multi-ask world never is.
    def answer_fields(self) -> Sequence[AnswerField]:
        return ()

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Any:
        raise ValueError("this world's turns are its asks")

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        given: Given = outcome
        got = sum(given.received.values())
        return f"round {tick + 1}: you gave {given.coins} coins to #{given.to} and got {got}"


# ---- the offline stand-in ------------------------------------------------------------------


class WarmGivers:
    """Seeded generosity, nudged by policies, leaning towards neighbours who gave before."""

    def __init__(self, agents: int, rng: np.random.Generator) -> None:
        self.generosity = rng.beta(2.0, 3.0, size=agents)
        # warmth[a][n]: the coins n gave a, summed over the run (from outcomes told).
        self.warmth: list[dict[AgentId, int]] = [{} for _ in range(agents)]

    def remember(self, agent_id: AgentId, tick: int, outcome: Any) -> None:
        for sender, coins in outcome.received.items():
            warmth = self.warmth[agent_id]
            warmth[sender] = warmth.get(sender, 0) + coins

    def answer_ask(
        self,
        agent_id: AgentId,
        ask: str,
        observation: Any,
        answers: Mapping[str, Any],
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        view: GiftView = observation
        if ask == "message":
            gift = answers["gift"]
            kind = "Thank you for last round." if gift["to"] in self.warmth[agent_id] else "Hello."
            amount = f"{gift['coins']} coin" + ("" if gift["coins"] == 1 else "s")
            return {"text": f"{kind} Here is my gift: {amount}."}, ""
        warmth = self.warmth[agent_id]
        best = max((warmth.get(n, 0) for n in view.neighbours), default=0)
        warmest = [n for n in view.neighbours if warmth.get(n, 0) == best]
        to = int(warmest[int(rng.integers(len(warmest)))])
        # A nudge towards giving raises the share; what it says is the policy's business.
        share = self.generosity[agent_id] + 0.2 * signals.get("generous", 0.0)
        share += rng.normal(0.0, 0.05)
        coins = int(np.clip(round(share * view.endowment), 0, view.endowment))
        reason = f"#{to} has been kind to me" if best else f"I share with #{to}"
        return {"reasoning": reason, "to": to, "coins": coins}, "generous"

    def decide(
        self,
        agent_id: AgentId,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        raise NotImplementedError("this world's turns are its asks")

    def describe(self) -> dict[str, Any]:
        return {"model": "seeded givers (beta(2, 3) generosity, warmth to past givers)"}


class GiftNetworkPlugin:
    name = "gift_network"
    config_type = GiftNetworkConfig
    action_type = Gift
    record_types: tuple[type[LogRecord], ...] = (GiftMessage,)

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        graph = nx.connected_watts_strogatz_graph(
            config.agents, config.neighbours, config.rewire, seed=seeds.integer("graph")
        )
        return WorldParts(
            world=GiftNetwork(config, graph),
            prompts=GiftPrompts(config),
            offline=WarmGivers(config.agents, seeds.rng("offline-generosity")),
        )


PLUGIN = GiftNetworkPlugin()
