"""FairMindSim's words: the rules, each agent's persona and history, and the round's three asks
(appraisal → choice with its chain of thought → feedback), all in one conversation.

Where the persona goes: the LLM agent composes a turn's first message as shared view,
policies, persona (``persona()``, one template for all agents with ``{agent}`` filled in),
memory, then the private view. A persona of its own per agent has no hook there, so it opens
the private view; for prefix caches the rest is laid out around it:

- the system text (``rules()``: the game and the questionnaires' items) is the same for every
  agent and every round;
- ``shared_view`` is the same every round (a rule reminder), so it does not break an agent's
  prefix from one round to the next;
- the private view is the persona (fixed per agent), then the rounds so far (one line per
  round, appended to), then this round: an agent's prompt for round j + 1 starts with its
  prompt for round j up to that round's line.

The LLM agent's own memory lines would come between the persona stub and the private view and
repeat the history listed there: ``runs/fairmind.toml`` sets ``agents.memory = 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agora.engine.protocols import AnswerField, Ask, AskNow
from agora.engine.records import AgentId
from agora.worlds.fairmind.brem import ENDOWMENT, POT
from agora.worlds.fairmind.cohort import Cohort
from agora.worlds.fairmind.config import FairMindConfig
from agora.worlds.fairmind.items import SCALES
from agora.worlds.fairmind.schedule import Schedule, Split
from agora.worlds.fairmind.world import (
    Choice,
    PastRound,
    RoundAnswer,
    RoundOutcome,
    RoundView,
    outcome_of,
)

RATING = {"type": "integer", "minimum": -100, "maximum": 100}
CHOICES = ("ACCEPT", "PUNISH")
REASONING_CHARS = 4000

VALENCE = AnswerField(
    "valence",
    "how pleasant you feel, a whole number from -100 (extremely unpleasant) through 0 "
    "(neutral) to 100 (extremely pleasant)",
    schema=RATING,
)
AROUSAL = AnswerField(
    "arousal",
    "how activated you feel, a whole number from -100 (extremely calm, sleepy) through 0 "
    "to 100 (extremely aroused, agitated)",
    schema=RATING,
)
REASONING = AnswerField(
    "reasoning",
    "your thoughts, step by step, as you weigh the split against what punishing costs you",
    schema={"type": "string", "maxLength": REASONING_CHARS},
)
CHOICE = AnswerField(
    "choice", '"ACCEPT" or "PUNISH"', schema={"type": "string", "enum": list(CHOICES)}
)


def points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def split_words(split: Split) -> str:
    return (
        f"Player 1 keeps {split.p1_share} of the {POT} points and gives Player 2 {split.p2_share}"
    )


def past_line(past: PastRound) -> str:
    split = past.split
    head = (
        f"round {past.round}: {split.p1_share}:{split.p2_share} split, punishing cost {split.cost}"
    )
    if past.choice is None:
        return f"{head}; you gave no usable answer, so the round was not played (0 points)"
    did = "punished" if past.choice == "PUNISH" else "accepted"
    return f"{head}; you {did} and got {points(past.pay)}"


class FairMindPrompts:
    def __init__(self, config: FairMindConfig, cohort: Cohort, schedule: Schedule) -> None:
        self.config = config
        self.cohort = cohort
        self.schedule = schedule

    def rules(self) -> str:
        low, high = self.schedule.cost_range
        cost = f"from {low} to {high} points" if low != high else f"{low} points"
        text = (
            f"You are a participant in an economic decision-making study of "
            f"{len(self.schedule)} rounds.\n\n"
            "In every round you are the Observer (Player 3) of a game between two other "
            "participants, Player 1 and Player 2, who are different people every round. "
            f"Player 1 has been given {POT} points and has decided how to split them between "
            "themselves and Player 2; Player 2 had no say. You receive a budget of "
            f"{ENDOWMENT} points for the round and decide what happens to the split:\n"
            "- ACCEPT: the split stands. Player 1 and Player 2 keep their shares and you keep "
            f"your {ENDOWMENT} points.\n"
            "- PUNISH: Player 1 loses their share (their earnings for the round become 0) and "
            "Player 2 keeps theirs; punishing costs you the round's cost, so you keep "
            f"{ENDOWMENT} minus the cost. The cost changes from round to round ({cost}).\n"
            "Your points add up over the rounds: they are your earnings in the study.\n\n"
            "Each round has three steps. First you rate how you feel about the split; then "
            "you choose ACCEPT or PUNISH, thinking it through, and rate how you feel as you "
            "choose; then you are told the outcome and rate how you feel about it. Feelings "
            "are rated on the Affect Grid: valence from -100 (extremely unpleasant) through 0 "
            "(neutral) to 100 (extremely pleasant), and arousal from -100 (extremely calm, "
            "sleepy) through 0 to 100 (extremely aroused, agitated). Use whole numbers, and "
            "use the whole range as your feelings call for it."
        )
        if not (self.config.item_texts and self.cohort.questionnaires):
            return text
        blocks = [
            text,
            "Before the study every participant answered these questionnaires; your own "
            "scores are in your profile.",
        ]
        for scale in SCALES:
            lines = [
                f"{scale.name}: {scale.measures}. {len(scale.items)} items, {scale.anchors}; "
                f"total {scale.low}–{scale.high}."
            ]
            lines += [f"{n}. {item}" for n, item in enumerate(scale.items, start=1)]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def persona(self) -> str:
        return "You are participant #{agent} of this study."

    def persona_of(self, agent_id: AgentId) -> str:
        """The agent's profile and the role-play instruction (``PersonaPerAgent``): in its
        system text, the prefix all 60 of its rounds share."""
        return self.cohort.profile(agent_id)

    def shared_view(self, tick: int) -> str:
        # The same every round: an agent's prompt then shares its prefix across rounds.
        return (
            f"Remember: ACCEPT keeps your {ENDOWMENT} points; PUNISH costs you the round's cost "
            "and takes Player 1's share away."
        )

    def private_view(self, agent_id: AgentId, observation: Any) -> str:
        view: RoundView = observation
        parts: list[str] = []
        if view.history:
            shown = len(view.history)
            head = (
                "Your rounds so far:" if shown == view.round - 1 else f"Your last {shown} rounds:"
            )
            parts.append("\n".join([head, *(f"- {past_line(p)}" for p in view.history)]))
        elif view.round == 1:
            parts.append("This is your first round.")
        parts.append(
            f"Your earnings so far: {view.earnings} points.\n\n"
            f"Round {view.round} of {view.rounds}: {split_words(view.split)}. Punishing would "
            f"cost you {view.split.cost} of your {ENDOWMENT} points."
        )
        return "\n\n".join(parts)

    # ---- the round's asks ----------------------------------------------------------------

    def asks(self) -> Sequence[Ask]:
        return (
            Ask("appraisal", (VALENCE, AROUSAL)),
            Ask("choice", (REASONING, CHOICE, VALENCE, AROUSAL), reasoning=True, policies=True),
            Ask("feedback", (VALENCE, AROUSAL)),
        )

    def next_ask(self, observation: Any, answers: Mapping[str, Any]) -> AskNow | None:
        view: RoundView = observation
        split = view.split
        if "appraisal" not in answers:
            return AskNow(
                "appraisal",
                "Before you decide anything: how do you feel about this split? Rate your "
                "valence and arousal.",
            )
        if "choice" not in answers:
            return AskNow(
                "choice",
                f"Now decide: ACCEPT the split, or PUNISH Player 1 at a cost of {split.cost} of "
                f"your {ENDOWMENT} points. Think it through first, then give your choice and "
                "rate how you feel as you make it.",
            )
        if "feedback" not in answers:
            choice: Choice = answers["choice"]["choice"]
            return AskNow("feedback", self._outcome_text(view, choice))
        return None

    def _outcome_text(self, view: RoundView, choice: Choice) -> str:
        split = view.split
        pay, p1 = outcome_of(split, choice)
        if choice == "PUNISH":
            what = (
                f"You punished. Player 1's earnings for this round are {p1} and Player 2 "
                f"keeps {split.p2_share}; you paid {split.cost} and keep {points(pay)}."
            )
        else:
            what = (
                f"You accepted. Player 1 keeps {p1} and Player 2 {split.p2_share}; you keep "
                f"your {pay} points."
            )
        return (
            f"The outcome: {what} Your earnings are now {view.earnings + pay} points. "
            "How do you feel now? Rate your valence and arousal."
        )

    def decode_ask(
        self, name: str, answer: Mapping[str, Any], observation: Any, answers: Mapping[str, Any]
    ) -> Any:
        valence = _rating(answer, "valence")
        arousal = _rating(answer, "arousal")
        if name != "choice":
            return {"valence": valence, "arousal": arousal}
        raw = answer.get("choice")
        choice = raw.strip().upper() if isinstance(raw, str) else raw
        if choice not in CHOICES:
            raise ValueError(f'"choice" {raw!r} is neither "ACCEPT" nor "PUNISH"')
        reasoning = str(answer.get("reasoning") or "").strip()
        if len(reasoning) > REASONING_CHARS:
            raise ValueError(f'"reasoning" has {len(reasoning)} characters, over {REASONING_CHARS}')
        return {"choice": choice, "reasoning": reasoning, "valence": valence, "arousal": arousal}

    def decode_turn(self, observation: Any, answers: Mapping[str, Any]) -> RoundAnswer:
        appraisal, choice, feedback = answers["appraisal"], answers["choice"], answers["feedback"]
        return RoundAnswer(
            choice=choice["choice"],
            reasoning=choice["reasoning"],
            appraisal_valence=appraisal["valence"],
            appraisal_arousal=appraisal["arousal"],
            choice_valence=choice["valence"],
            choice_arousal=choice["arousal"],
            feedback_valence=feedback["valence"],
            feedback_arousal=feedback["arousal"],
        )

    # A multi-ask world is never asked these.
    def answer_fields(self) -> Sequence[AnswerField]:
        return ()

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Any:
        raise ValueError("this world's turns are its asks")

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        done: RoundOutcome = outcome
        did = "punished" if done.choice == "PUNISH" else "accepted"
        return (
            f"round {done.round}: {done.p1_share}:{done.p2_share} split, punishing cost "
            f"{done.cost}; you {did} and got {points(done.pay)} (earnings {done.earnings})"
        )


def _rating(answer: Mapping[str, Any], name: str) -> int:
    value = answer.get(name)
    # JSON's true is a Python int: refused, or the log would hold a rating of `true`.
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 40.0 is the whole number 40
    if not isinstance(value, int) or isinstance(value, bool) or not -100 <= value <= 100:
        raise ValueError(f'"{name}" {value!r} is not a whole number from -100 to 100')
    return value
