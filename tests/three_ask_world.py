"""A world whose turn is three asks: rate the offer, accept or refuse it, rate the outcome
(and a fourth, in prose, after a refusal).

The shape of a FairMindSim round, small: the second ask sees the first answer, the third is
told what the choice led to. Its offline behaviour keeps a belief about offers, updated by
prediction error from each outcome it is told, so a resumed run answers as an unbroken one
only if that belief was rebuilt. Loaded as ``tests.three_ask_world:PLUGIN``, as a user's
own world would be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec
import numpy as np

from agora.engine.protocols import AnswerField, Ask, AskNow, WorldParts

VALENCE = {"type": "integer", "minimum": -100, "maximum": 100}


class OffersConfig(msgspec.Struct, forbid_unknown_fields=True):
    kind: str = ""
    agents: int = 4
    offers: list[int] = msgspec.field(default_factory=lambda: [2, 5, 8, 1, 6])
    # False: a lockstep world (the same rounds, behind a tick barrier).
    independent: bool = True


class OfferView(msgspec.Struct, frozen=True):
    round: int
    offer: int
    earnings: int


class Round(msgspec.Struct, frozen=True):
    before: int
    choice: str
    after: int
    # A refusal comes with a line to the proposer, asked as free text.
    note: str = ""


class Outcome(msgspec.Struct, frozen=True):
    offer: int
    payoff: int


def payoff(offer: int, choice: str) -> int:
    return offer if choice == "ACCEPT" else 0


class OffersWorld:
    def __init__(self, agents: int, offers: list[int], independent: bool) -> None:
        self.independent = independent
        self.offers = offers
        self.earnings = [0] * agents
        # Per agent, per round: the choice made, or why there was none.
        self.history: list[list[str]] = [[] for _ in range(agents)]

    def offer(self, tick: int) -> int:
        return self.offers[tick % len(self.offers)]

    def agent_ids(self) -> tuple[int, ...]:
        return tuple(range(len(self.earnings)))

    def active_agents(self, tick: int, rng: np.random.Generator) -> tuple[int, ...]:
        return self.agent_ids()

    def observe(self, agent_id: int, tick: int) -> OfferView:
        return OfferView(tick + 1, self.offer(tick), self.earnings[agent_id])

    def annotate(self, agent_id: int, observation: Any, action: Any) -> dict[str, Any]:
        return {"offer": observation.offer}

    def apply(self, tick, actions, rng, missed):
        outcomes = {}
        for agent, action in actions.items():
            gained = payoff(self.offer(tick), action.choice)
            self.earnings[agent] += gained
            self.history[agent].append(action.choice)
            outcomes[agent] = Outcome(self.offer(tick), gained)
        for agent, why in missed.items():
            self.history[agent].append(f"missed:{why}")
        return outcomes

    def metrics(self, tick: int) -> dict[str, Any]:
        played = [h[tick] for h in self.history if len(h) > tick]
        return {
            "accepted": played.count("ACCEPT"),
            "refused": played.count("PUNISH"),
            "missed": sum(p.startswith("missed") for p in played),
        }

    def digest(self, tick: int) -> str:
        # Of the history only: on the free-running scheduler an agent may be rounds ahead
        # when a tick closes, so its earnings are already past this tick.
        state = [h[: tick + 1] for h in self.history]
        return hashlib.blake2b(repr(state).encode(), digest_size=8).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"agents": len(self.earnings)}


class OffersPrompts:
    def rules(self) -> str:
        return "Each round you are offered a share of 10 coins. You may accept it or refuse it."

    def persona(self) -> str:
        return "You are player #{agent}."

    def shared_view(self, tick: int) -> str:
        return f"Round {tick + 1}."

    def private_view(self, agent_id: int, observation: Any) -> str:
        return f"You have earned {observation.earnings} coins so far."

    def answer_fields(self):
        raise NotImplementedError("a multi-ask world declares asks()")

    def decode_action(self, answer, observation):
        raise NotImplementedError("a multi-ask world decodes with decode_turn")

    def describe_outcome(self, tick: int, outcome: Outcome) -> str:
        return f"round {tick + 1}: offered {outcome.offer}, you got {outcome.payoff}"

    def asks(self) -> tuple[Ask, ...]:
        valence = AnswerField("valence", "how you feel, -100 to 100", schema=VALENCE)
        choice = AnswerField(
            "choice", '"ACCEPT" or "PUNISH"', schema={"enum": ["ACCEPT", "PUNISH"]}
        )
        return (
            Ask("appraise", (valence,), max_reasks=1),
            Ask("choose", (AnswerField("reasoning", "why"), choice), reasoning=True),
            Ask("feedback", (valence,), max_reasks=0),
            Ask("note", (), free_text=True),
        )

    def next_ask(self, observation: OfferView, answers: Mapping[str, Any]) -> AskNow | None:
        if "appraise" not in answers:
            return AskNow(
                "appraise", f"You are offered {observation.offer} of 10. How do you feel?"
            )
        if "choose" not in answers:
            return AskNow("choose", f"You felt {answers['appraise']}. Accept or refuse?")
        if "feedback" not in answers:
            gained = payoff(observation.offer, answers["choose"])
            return AskNow("feedback", f"You chose {answers['choose']} and got {gained}. And now?")
        if answers["choose"] == "PUNISH" and "note" not in answers:
            return AskNow("note", "Write one sentence to the proposer, as plain text.")
        return None

    def decode_ask(self, name, answer, observation, answers):
        if name == "note":
            if len(answer["text"]) > 280:
                raise ValueError("the note is longer than 280 characters")
            return answer["text"]
        if name == "choose":
            choice = answer.get("choice")
            if choice not in ("ACCEPT", "PUNISH"):
                raise ValueError(f"choice {choice!r} is neither ACCEPT nor PUNISH")
            return choice
        valence = answer.get("valence")
        if not isinstance(valence, int) or isinstance(valence, bool) or abs(valence) > 100:
            raise ValueError(f"valence {valence!r} is not an integer from -100 to 100")
        return valence

    def decode_turn(self, observation, answers):
        return Round(
            answers["appraise"], answers["choose"], answers["feedback"], answers.get("note", "")
        )


class BeliefOffline:
    """Expects an offer, learns from each one by prediction error, refuses well below it."""

    def __init__(self, agents: int, rate: float = 0.5) -> None:
        self.rate = rate
        self.belief = [5.0] * agents

    def remember(self, agent_id: int, tick: int, outcome: Outcome) -> None:
        self.belief[agent_id] += self.rate * (outcome.offer - self.belief[agent_id])

    def answer_ask(self, agent_id, ask, observation, answers, rng, signals):
        surprise = observation.offer - self.belief[agent_id]
        if ask == "appraise":
            return {"valence": int(np.clip(round(20 * surprise), -100, 100))}, "rating"
        if ask == "choose":
            choice = "ACCEPT" if surprise > -2 else "PUNISH"
            return {"reasoning": f"expected {self.belief[agent_id]:.2f}", "choice": choice}, choice
        if ask == "note":
            return {"text": f"An offer of {observation.offer} is unfair."}, ""
        gained = payoff(observation.offer, answers["choose"])
        return {"valence": int(np.clip(10 * gained - 40 + int(rng.integers(-5, 6)), -100, 100))}, ""

    def decide(self, agent_id, observation, rng, signals):
        raise NotImplementedError("a multi-ask world is answered by answer_ask")

    def describe(self) -> dict[str, Any]:
        return {"model": "belief by prediction error", "rate": self.rate}


class OffersPlugin:
    name = "offers"
    config_type = OffersConfig
    action_type = Round

    def build(self, config: Any, seeds: Any) -> WorldParts:
        world = OffersWorld(config.agents, config.offers, config.independent)
        return WorldParts(world, OffersPrompts(), BeliefOffline(config.agents))


PLUGIN = OffersPlugin()
