"""A synthetic independent-agents game: each agent plays its own rounds of a giving game.

Every round an agent is handed an endowment and says how much of it to give to an anonymous
other; nothing one agent does reaches another. That is the shape of FairMindSim's 60-round
third-party-punishment game (independent agents, many rounds each), so the engine runs it
barrier-free, and it stands in for it in the benchmarks (barrier-free vs lockstep, efficiency
against a server) until that world lands.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import msgspec
import numpy as np

from agora.engine.protocols import AnswerField, Missed, WorldParts
from agora.engine.records import Message
from agora.engine.seeding import Seeds


class RoundsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: Literal["rounds_game"] = "rounds_game"
    agents: Annotated[int, msgspec.Meta(ge=1)] = 100
    endowment: Annotated[int, msgspec.Meta(ge=1)] = 10


class RoundView(msgspec.Struct, frozen=True):
    round: int
    endowment: int
    given_so_far: int


class Give(msgspec.Struct, frozen=True):
    amount: int


class RoundsGame:
    independent = True

    def __init__(self, config: RoundsConfig) -> None:
        self.config = config
        self._ids = tuple(range(config.agents))
        # One entry per round an agent had: what it gave, or None for a round it missed (no
        # usable answer), so round t is always entry t whatever the answers were.
        self.given: list[list[int | None]] = [[] for _ in self._ids]

    def agent_ids(self) -> Sequence[int]:
        return self._ids

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[int]:
        return self._ids

    def observe(self, agent_id: int, tick: int) -> RoundView:
        given = sum(amount for amount in self.given[agent_id] if amount is not None)
        return RoundView(tick + 1, self.config.endowment, given)

    def annotate(self, agent_id: int, observation: Any, action: Any) -> dict[str, Any]:
        return {"share": action.amount / self.config.endowment}

    def apply(
        self,
        tick: int,
        actions: Mapping[int, Any],
        rng: np.random.Generator,
        missed: Mapping[int, Missed],
    ) -> dict[int, Any]:
        for agent, action in actions.items():
            self.given[agent].append(action.amount)
        for agent in missed:
            self.given[agent].append(None)
        return {agent: action.amount for agent, action in actions.items()}

    def metrics(self, tick: int) -> dict[str, Any]:
        this_round = [h[tick] for h in self.given if len(h) > tick]
        played = [amount for amount in this_round if amount is not None]
        mean = sum(played) / len(played) if played else 0.0
        return {
            "mean_given": round(mean, 6),
            "played": len(played),
            "missed": len(this_round) - len(played),
        }

    def digest(self, tick: int) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for history in self.given:
            digest.update(repr(history[: tick + 1]).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"agents": self.config.agents, "endowment": self.config.endowment}


class RoundsPrompts:
    def __init__(self, game: RoundsGame) -> None:
        self.game = game

    def persona(self) -> str:
        return "You are player #{agent}."

    def rules(self) -> str:
        return (
            "You play a giving game. Each round you receive coins and decide how many to give "
            "to an anonymous stranger; you keep the rest."
        )

    def shared_view(self, tick: int) -> str:
        return f"Round {tick + 1}."

    def private_view(self, agent_id: int, observation: Any) -> str:
        view: RoundView = observation
        return (
            f"You have {view.endowment} coins this round; "
            f"you have given {view.given_so_far} coins so far."
        )

    def answer_fields(self) -> Sequence[AnswerField]:
        return (
            AnswerField("reasoning", "a sentence on why", schema={"type": "string"}),
            AnswerField(
                "give",
                "how many coins you give, a whole number",
                schema={"type": "integer", "minimum": 0},
            ),
        )

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Give:
        view: RoundView = observation
        amount = answer.get("give")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError('"give" must be a whole number')
        if not 0 <= amount <= view.endowment:
            raise ValueError(f'"give" must be between 0 and {view.endowment}')
        return Give(amount)

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        return f"round {tick + 1}: you gave {outcome} coins"


class Givers:
    """Offline: each agent has a seeded generosity and gives about that share, with noise."""

    def __init__(self, agents: int, rng: np.random.Generator) -> None:
        self.generosity = rng.beta(2.0, 3.0, size=agents)

    def decide(
        self,
        agent_id: int,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        view: RoundView = observation
        share = float(np.clip(self.generosity[agent_id] + rng.normal(0.0, 0.1), 0.0, 1.0))
        amount = round(share * view.endowment)
        return {"reasoning": f"I give {amount} of {view.endowment}.", "give": amount}, "giver"

    def describe(self) -> dict[str, Any]:
        return {"model": "seeded givers (beta(2, 3) generosity)"}


_COINS = re.compile(r"You have (\d+) coins this round")


class RoundsTextResponder:
    """Answers the game's prompts for the mock server: gives a seeded share of the endowment."""

    def answer(self, messages: Sequence[Message], rng: np.random.Generator) -> str | None:
        match = _COINS.search("\n".join(m.content for m in messages if m.role == "user"))
        if match is None:
            return None
        endowment = int(match.group(1))
        amount = int(rng.integers(0, endowment + 1))
        return msgspec.json.encode({"reasoning": "a fair share", "give": amount}).decode()


class RoundsGamePlugin:
    name = "rounds_game"
    # Its agents never meet: the engine runs it barrier-free and refuses shared policies.
    independent = True
    config_type = RoundsConfig
    action_type = Give
    text_responder = RoundsTextResponder()

    def build(self, config: Any, seeds: Seeds) -> WorldParts:
        game = RoundsGame(config)
        return WorldParts(
            world=game,
            prompts=RoundsPrompts(game),
            offline=Givers(config.agents, seeds.rng("offline-mix")),
        )


PLUGIN = RoundsGamePlugin()
