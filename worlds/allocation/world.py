"""One-shot allocation games with minimal-pair stances (issue 16).

Each agent plays the configured game once per tick (a fresh one-shot decision each tick, with
its own seed), as one of the stances: agent ``a`` has stance ``stances[a % len(stances)]``.
Two agents' prompts differ only in their stance sentence: the rules, the persona line (the
same for all), the question and the answer format are word for word the same, and the agent
remembers nothing (``agents.memory = 0``), so a shift in the allocations is the stance's.

The answer is one whole number from 0 to the game's maximum (``amount``; a reason may go
with it), so a server that constrains decoding, or the ``local`` backend's scoring, keeps it
in range. Each answer is an ``allocation`` record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np

from agora.engine.protocols import AnswerField, Missed
from agora.engine.records import AgentId, LogRecord
from agora.worlds.allocation.texts import Game, Texts

REASON_CHARS = 300


class OfflineGivers(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The offline stand-in (a behavioural model, never an LLM): each answer is the maximum ×
    a Beta draw with mean ``means[stance]`` (``default_mean`` for a stance not listed) and
    concentration ``concentration``, rounded."""

    means: dict[str, float] = msgspec.field(
        default_factory=lambda: {"generous": 0.5, "selfish": 0.1, "neutral": 0.3}
    )
    default_mean: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.3
    concentration: Annotated[float, msgspec.Meta(gt=0.0)] = 8.0


class AllocationConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "allocation"
    game: str = "dictator"
    stances: list[str] = msgspec.field(default_factory=lambda: ["generous", "selfish", "neutral"])
    # Agents per stance: the run has samples × len(stances) agents.
    samples: Annotated[int, msgspec.Meta(ge=1)] = 30
    endowment: Annotated[int, msgspec.Meta(ge=1)] = 100
    # Unset: the game's own (games.toml: trust 3, public goods 1.6).
    multiplier: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    # Public goods: the group's size (you and group − 1 others).
    group: Annotated[int, msgspec.Meta(ge=2)] = 4
    # What the other player sent: the trustor (trust, trustee) or the dictator (third-party
    # punishment); unset: the game's ``sent_share`` of the endowment, else half.
    sent: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # Third-party punishment: the observer's own points; unset: half the endowment (Fehr &
    # Fischbacher 2004: 50 beside the dictator's 100).
    budget: Annotated[int, msgspec.Meta(ge=1)] | None = None
    # Ask for a short reason beside the amount (optional: an answer without one is valid).
    reasons: bool = True
    games: str | None = None
    stances_file: str | None = None
    offline: OfflineGivers = msgspec.field(default_factory=OfflineGivers)

    @property
    def agents(self) -> int:
        return self.samples * len(self.stances)


class Setting(msgspec.Struct, frozen=True):
    """A game's numbers as this run plays it."""

    endowment: int
    multiplier: float
    group: int
    sent: int
    budget: int

    @property
    def received(self) -> int:
        return round(self.sent * self.multiplier)

    @property
    def kept(self) -> int:
        return self.endowment - self.sent

    def fill(self, text: str) -> str:
        return text.format(
            endowment=self.endowment,
            multiplier=f"{self.multiplier:g}",
            group=self.group,
            others=self.group - 1,
            sent=self.sent,
            received=self.received,
            kept=self.kept,
            budget=self.budget,
        )


def setting_of(config: AllocationConfig, game: Game) -> Setting:
    if config.sent is not None:
        sent = config.sent
    elif game.sent_share is not None:
        sent = round(game.sent_share * config.endowment)
    else:
        sent = config.endowment // 2
    multiplier = config.multiplier if config.multiplier is not None else game.multiplier
    budget = config.budget if config.budget is not None else max(config.endowment // 2, 1)
    return Setting(config.endowment, multiplier, config.group, sent, budget)


class DecisionView(msgspec.Struct, frozen=True):
    game: str
    stance: str
    maximum: int


class Allocation(msgspec.Struct, frozen=True):
    amount: int
    reasoning: str


class AllocationRecord(LogRecord, tag="allocation"):
    """One answered decision (``agora.load_run(...).of("allocation")``)."""

    tick: int
    agent: AgentId
    game: str
    stance: str
    amount: int
    maximum: int
    share: float
    reasoning: str


class AllocationWorld:
    independent = True  # every decision is one agent's alone

    def __init__(self, config: AllocationConfig, texts: Texts, game: Game) -> None:
        self.config = config
        self.texts = texts
        self.game = game
        self.setting = setting_of(config, game)
        self.maximum = {
            "received": self.setting.received,
            "budget": self.setting.budget,
            "endowment": self.setting.endowment,
        }[game.maximum]
        # Per agent, per tick it had a turn: its amount, or None when it missed it.
        self.answers: list[list[int | None]] = [[] for _ in range(config.agents)]
        self.pending: dict[int, list[LogRecord]] = {}

    def stance_of(self, agent_id: AgentId) -> str:
        return self.config.stances[agent_id % len(self.config.stances)]

    def agent_ids(self) -> Sequence[AgentId]:
        return tuple(range(self.config.agents))

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[AgentId]:
        return self.agent_ids()

    def observe(self, agent_id: AgentId, tick: int) -> DecisionView:
        return DecisionView(self.game.key, self.stance_of(agent_id), self.maximum)

    def annotate(self, agent_id: AgentId, observation: Any, action: Any) -> dict[str, Any]:
        return {"stance": observation.stance}

    def apply(
        self,
        tick: int,
        actions: Mapping[AgentId, Any],
        rng: np.random.Generator,
        missed: Mapping[AgentId, Missed],
    ) -> dict[AgentId, Any]:
        records = self.pending.setdefault(tick, [])
        for agent in sorted(set(actions) | set(missed)):
            answer: Allocation | None = actions.get(agent)
            rows = self.answers[agent]
            while len(rows) < tick:  # a free-running agent's earlier ticks came first
                rows.append(None)
            rows.append(answer.amount if answer is not None else None)
            if answer is not None:
                records.append(
                    AllocationRecord(
                        tick,
                        agent,
                        self.game.key,
                        self.stance_of(agent),
                        answer.amount,
                        self.maximum,
                        round(answer.amount / self.maximum, 6) if self.maximum else 0.0,
                        answer.reasoning,
                    )
                )
        return {agent: answer.amount for agent, answer in actions.items()}

    def tick_records(self, tick: int) -> list[LogRecord]:
        return self.pending.pop(tick, [])

    def metrics(self, tick: int) -> dict[str, Any]:
        today = [
            (self.stance_of(a), rows[tick])
            for a, rows in enumerate(self.answers)
            if len(rows) > tick and rows[tick] is not None
        ]
        played = sum(len(rows) > tick for rows in self.answers)
        out: dict[str, Any] = {"answered": len(today), "missed": played - len(today)}
        for stance in dict.fromkeys(self.config.stances):
            amounts = [v for s, v in today if s == stance and v is not None]
            out[f"mean_{stance}"] = round(float(np.mean(amounts)), 4) if amounts else None
        return out

    def digest(self, tick: int) -> str:
        state = msgspec.json.encode([rows[: tick + 1] for rows in self.answers])
        return hashlib.blake2b(state, digest_size=16).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "agents": self.config.agents,
            "game": self.game.key,
            "title": self.game.title,
            "stances": list(self.config.stances),
            "maximum": self.maximum,
            "setting": msgspec.to_builtins(self.setting),
            "texts": self.texts.source,
            "texts_digest": self.texts.digest,
        }


class AllocationPrompts:
    """The words: the game in the rules (the same for every agent), the stance sentence and the
    question in the agent's own view; nothing else differs between two agents' prompts."""

    def __init__(self, world: AllocationWorld) -> None:
        self.world = world

    def rules(self) -> str:
        return (
            f"{self.world.game.title}. {self.world.setting.fill(self.world.game.text)} "
            "This is a one-shot decision, made once and in private."
        )

    def persona(self) -> str:
        return "You are a participant in this study."  # the same for all: no agent number

    def shared_view(self, tick: int) -> str:
        return ""

    def private_view(self, agent_id: AgentId, observation: Any) -> str:
        view: DecisionView = observation
        stance = self.world.texts.stances[view.stance]
        return f"{stance}\n\n{self.world.setting.fill(self.world.game.question)}"

    def answer_fields(self) -> Sequence[AnswerField]:
        amount = {"type": "integer", "minimum": 0, "maximum": self.world.maximum}
        fields = [
            AnswerField("amount", f"a whole number from 0 to {self.world.maximum}", True, amount)
        ]
        if self.world.config.reasons:
            reason = {"type": "string", "maxLength": REASON_CHARS}
            fields.append(AnswerField("reasoning", "why, in one sentence", False, reason))
        return fields

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Allocation:
        view: DecisionView = observation
        amount = answer.get("amount")
        if isinstance(amount, float) and amount.is_integer():
            amount = int(amount)
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or not 0 <= amount <= view.maximum
        ):
            raise ValueError(f"amount {amount!r} is not a whole number from 0 to {view.maximum}")
        reasoning = answer.get("reasoning")
        return Allocation(amount, reasoning[:REASON_CHARS] if isinstance(reasoning, str) else "")

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        return f"you answered {outcome}"


class OfflineAllocators:
    """A Beta draw per decision around the stance's mean (``OfflineGivers``)."""

    def __init__(self, world: AllocationWorld, settings: OfflineGivers) -> None:
        self.world = world
        self.settings = settings

    def decide(
        self,
        agent_id: AgentId,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        view: DecisionView = observation
        mean = self.settings.means.get(view.stance, self.settings.default_mean)
        k = self.settings.concentration
        share = float(rng.beta(mean * k, (1.0 - mean) * k))
        amount = int(np.clip(round(share * view.maximum), 0, view.maximum))
        reason = (
            f"[offline allocator, not a language model] as a {view.stance} participant I give "
            f"about {mean:.0%} on average; this time {amount}."
        )
        return {"amount": amount, "reasoning": reason}, view.stance

    def describe(self) -> dict[str, Any]:
        return {
            "model": "offline allocators (a Beta draw around each stance's mean), not an LLM",
            "means": dict(self.settings.means),
            "concentration": self.settings.concentration,
        }
