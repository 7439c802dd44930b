"""The FairMindSim world: each agent, the observer of a third-party punishment game, plays its
own rounds of the schedule; nothing one agent does reaches another (an independent world, run
barrier-free).

Round j (tick j − 1): Player 1 splits a 30-point pot with Player 2 as the schedule says; the
observer, endowed with 10 points, ACCEPTs (keeps 10) or PUNISHes (Player 1's share goes to 0,
the observer pays the round's cost Y and keeps 10 − Y). The observer's earnings add up over
the rounds.

A round an agent missed (no usable answer after its re-asks, or no answer at all) is kept in
its history as missed, pays nothing and has no trial record: the trial table holds what was
played, the tick metrics count the missed ones, and round j stays entry j − 1 of the history
whatever the answers were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from agora.engine.protocols import Missed
from agora.engine.records import AgentId, LogRecord
from agora.worlds.fairmind.brem import ENDOWMENT
from agora.worlds.fairmind.cohort import Cohort
from agora.worlds.fairmind.config import FairMindConfig
from agora.worlds.fairmind.schedule import Schedule, Split

Choice = Literal["ACCEPT", "PUNISH"]
PHASES = ("appraisal", "choice", "feedback")
# The six affect series of eq. 3, in the trial record's column names.
AFFECT_COLUMNS = tuple(f"{phase}_{dim}" for phase in PHASES for dim in ("valence", "arousal"))


# ---- what crosses the engine: observations, actions, outcomes, records -----------------------


class PastRound(msgspec.Struct, frozen=True, array_like=True):
    """A round as the agent remembers it; ``choice`` is None for a missed round."""

    round: int
    split: Split
    choice: Choice | None
    pay: int


class RoundView(msgspec.Struct, frozen=True):
    """What an agent decides round ``round`` on (1-based; tick + 1)."""

    round: int
    rounds: int
    split: Split
    earnings: int
    history: tuple[PastRound, ...]


class RoundAnswer(msgspec.Struct, frozen=True):
    """The turn's answers: the choice, its chain of thought, and the six affect ratings."""

    choice: Choice
    reasoning: str
    appraisal_valence: int
    appraisal_arousal: int
    choice_valence: int
    choice_arousal: int
    feedback_valence: int
    feedback_arousal: int


class RoundOutcome(msgspec.Struct, frozen=True):
    """What a round led to, told to the agent's memory and to the offline behaviour."""

    round: int
    p1_share: int
    p2_share: int
    cost: int
    choice: Choice
    pay: int
    earnings: int


class FairMindTrial(LogRecord, tag="fairmind_trial"):
    """One played round: the per-round table of the spec (``agora.load_run(...)
    .of("fairmind_trial")``). ``pay`` is the observer's points of the round, ``earnings``
    its total after it; ``p1_earnings`` is Player 1's (0 after a punishment)."""

    tick: int
    agent: AgentId
    round: int
    p1_share: int
    p2_share: int
    cost: int
    choice: Choice
    appraisal_valence: int
    appraisal_arousal: int
    choice_valence: int
    choice_arousal: int
    feedback_valence: int
    feedback_arousal: int
    reasoning: str
    pay: int
    earnings: int
    p1_earnings: int


def outcome_of(split: Split, choice: Choice) -> tuple[int, int]:
    """(the observer's pay, Player 1's earnings) of a round."""
    if choice == "PUNISH":
        return ENDOWMENT - split.cost, 0
    return ENDOWMENT, split.p1_share


class _Entry(msgspec.Struct, frozen=True, array_like=True):
    """One round of an agent's history: what it chose (or why it missed), what it earned."""

    choice: str  # "ACCEPT", "PUNISH", "missed:invalid", "missed:error"
    pay: int
    earnings: int
    ratings: tuple[int, ...]


def _played(choice: str) -> Choice | None:
    if choice == "ACCEPT":
        return "ACCEPT"
    if choice == "PUNISH":
        return "PUNISH"
    return None


# ---- the world -----------------------------------------------------------------------------


class FairMindWorld:
    independent = True  # each observer plays its own rounds

    def __init__(self, config: FairMindConfig, cohort: Cohort, schedule: Schedule) -> None:
        self.config = config
        self.cohort = cohort
        self.schedule = schedule
        self._ids = tuple(range(len(cohort)))
        # The inputs the rounds were played on, in every digest: a replay on a persona or
        # schedule file edited since the run fails its first tick, not later and quietly.
        inputs = msgspec.json.encode([cohort.fingerprint(), schedule.digest()])
        self._inputs = hashlib.blake2b(inputs, digest_size=16).digest()
        # Per agent, one entry per tick it had a turn: free-running agents run ahead of the
        # tick being closed, so metrics and digests read entries by tick, never totals.
        self.history: list[list[_Entry]] = [[] for _ in self._ids]
        # The trials of each tick until the engine takes them as the tick closes; the
        # people go out with tick 0.
        self.pending: dict[int, list[LogRecord]] = {0: cohort.records()}

    def agent_ids(self) -> Sequence[AgentId]:
        return self._ids

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[AgentId]:
        return self._ids

    def observe(self, agent_id: AgentId, tick: int) -> RoundView:
        entries = self.history[agent_id][:tick]
        shown = self.config.history_rounds
        first = max(0, len(entries) - shown)
        past = tuple(
            PastRound(
                number + 1,
                self.schedule.at(number),
                _played(entry.choice),
                entry.pay,
            )
            for number, entry in enumerate(entries)
            if number >= first
        )
        earnings = entries[-1].earnings if entries else 0
        return RoundView(tick + 1, len(self.schedule), self.schedule.at(tick), earnings, past)

    def annotate(self, agent_id: AgentId, observation: Any, action: Any) -> dict[str, Any]:
        view: RoundView = observation
        answer: RoundAnswer = action
        split = view.split
        return {
            "round": view.round,
            "split": f"{split.p1_share}:{split.p2_share}",
            "cost": split.cost,
            "choice": answer.choice,
        }

    def apply(
        self,
        tick: int,
        actions: Mapping[AgentId, Any],
        rng: np.random.Generator,
        missed: Mapping[AgentId, Missed],
    ) -> dict[AgentId, Any]:
        split = self.schedule.at(tick)
        outcomes: dict[AgentId, Any] = {}
        for agent, action in actions.items():
            answer: RoundAnswer = action
            pay, p1_earnings = outcome_of(split, answer.choice)
            earnings = self._earnings(agent, tick) + pay
            ratings = tuple(getattr(answer, column) for column in AFFECT_COLUMNS)
            self._record(agent, tick, _Entry(answer.choice, pay, earnings, ratings))
            trial = FairMindTrial(
                tick=tick,
                agent=agent,
                round=tick + 1,
                p1_share=split.p1_share,
                p2_share=split.p2_share,
                cost=split.cost,
                choice=answer.choice,
                reasoning=answer.reasoning,
                pay=pay,
                earnings=earnings,
                p1_earnings=p1_earnings,
                **{column: getattr(answer, column) for column in AFFECT_COLUMNS},
            )
            self.pending.setdefault(tick, []).append(trial)
            outcomes[agent] = RoundOutcome(
                tick + 1, split.p1_share, split.p2_share, split.cost, answer.choice, pay, earnings
            )
        for agent, why in missed.items():
            # A missed round pays nothing and keeps the earnings where they were.
            self._record(agent, tick, _Entry(f"missed:{why}", 0, self._earnings(agent, tick), ()))
        return outcomes

    def _earnings(self, agent: AgentId, tick: int) -> int:
        entries = self.history[agent]
        return entries[tick - 1].earnings if tick > 0 and len(entries) >= tick else 0

    def _record(self, agent: AgentId, tick: int, entry: _Entry) -> None:
        entries = self.history[agent]
        if len(entries) != tick:
            # Every agent has a turn every tick and each is applied once, in order.
            raise RuntimeError(
                f"agent {agent}'s round {tick + 1} applied after {len(entries)} rounds"
            )
        entries.append(entry)

    def tick_records(self, tick: int) -> list[LogRecord]:
        """The tick's trials (and, at tick 0, the personas), logged as the tick closes."""
        return self.pending.pop(tick, [])

    def metrics(self, tick: int) -> dict[str, Any]:
        entries = [h[tick] for h in self.history if len(h) > tick]
        played = [e for e in entries if not e.choice.startswith("missed")]
        punished = sum(e.choice == "PUNISH" for e in played)
        split = self.schedule.at(tick)

        def mean(values: Sequence[float]) -> float | None:
            return round(float(np.mean(values)), 4) if values else None

        column = {name: i for i, name in enumerate(AFFECT_COLUMNS)}
        return {
            "played": len(played),
            "missed": len(entries) - len(played),
            "punished": punished,
            "punish_rate": round(punished / len(played), 4) if played else None,
            "p2_share": split.p2_share,
            "cost": split.cost,
            "mean_appraisal_valence": mean(
                [e.ratings[column["appraisal_valence"]] for e in played]
            ),
            "mean_appraisal_arousal": mean(
                [e.ratings[column["appraisal_arousal"]] for e in played]
            ),
            "mean_feedback_valence": mean([e.ratings[column["feedback_valence"]] for e in played]),
            "mean_earnings": mean([e.earnings for e in entries]),
        }

    def digest(self, tick: int) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self._inputs)
        for entries in self.history:
            digest.update(msgspec.json.encode(entries[: tick + 1]))
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "agents": len(self.cohort),
            "rounds": len(self.schedule),
            "unfair_rounds": self.schedule.unfair_rounds,
            "schedule": self.schedule.source,
            "schedule_digest": self.schedule.digest(),
            **self.cohort.describe(),
            "human_punish_rate": self.config.human_punish_rate,
            "missed_rounds": "kept in the history as missed, paying nothing; no trial record",
        }
