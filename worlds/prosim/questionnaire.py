"""Study 1: every agent rates its willingness (1–7) to act in six everyday prosocial
scenarios, each under no policy or one of four interventions, optionally giving its
Belief–Desire–Intention reasons. One turn of many asks, one per item, in one conversation;
the items' order is the agent's own (seeded) unless ``order = "fixed"``.

Agents never meet: the world is independent and runs barrier-free. Each answered item is a
``prosim_rating`` record and each persona a ``prosim_persona`` record. A run of more than one
tick asks the questionnaire again each tick (a test–retest design).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import numpy as np

from agora.engine.protocols import AnswerField, Ask, AskNow, Missed
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds
from agora.worlds.prosim.config import ScenariosConfig
from agora.worlds.prosim.personas import Persona, render
from agora.worlds.prosim.records import ProSimPersona, persona_record
from agora.worlds.prosim.texts import Intervention, Scenarios

WILLINGNESS_MIN, WILLINGNESS_MAX = 1, 7
REASON_CHARS = 300
REASONS = ("belief", "desire", "intention")


class Item(msgspec.Struct, frozen=True, array_like=True):
    scenario: str
    intervention: Intervention

    @property
    def name(self) -> str:
        return f"{self.scenario}:{self.intervention}"


class QuestionnaireView(msgspec.Struct, frozen=True):
    tick: int
    items: tuple[Item, ...]


class ItemAnswer(msgspec.Struct, frozen=True):
    scenario: str
    intervention: Intervention
    willingness: int
    belief: str = ""
    desire: str = ""
    intention: str = ""


class Questionnaire(msgspec.Struct, frozen=True):
    """The turn's action: every item's answer, in the order asked."""

    answers: tuple[ItemAnswer, ...]


class ProSimRating(LogRecord, tag="prosim_rating"):
    """One answered item (``agora.load_run(...).of("prosim_rating")``); ``position`` is its
    place in the agent's questionnaire (0 first)."""

    tick: int
    agent: AgentId
    scenario: str
    intervention: Intervention
    position: int
    willingness: int
    belief: str
    desire: str
    intention: str


class ScenarioWorld:
    independent = True

    def __init__(
        self,
        config: ScenariosConfig,
        personas: Sequence[Persona],
        scenarios: Scenarios,
        seeds: Seeds,
        source: str,
    ) -> None:
        self.config = config
        self.personas = tuple(personas)
        self.scenarios = scenarios
        self.source = source
        items = [Item(s.key, i) for s in scenarios.items for i in config.interventions]
        self.orders: tuple[tuple[Item, ...], ...] = tuple(
            tuple(items)
            if config.order == "fixed"
            else tuple(items[int(k)] for k in seeds.rng("prosim-order", a).permutation(len(items)))
            for a in range(config.agents)
        )
        # Per agent, per tick it had a turn: answered or missed (None).
        self.answered: list[list[Questionnaire | None]] = [[] for _ in personas]
        self.pending: dict[int, list[LogRecord]] = {}
        self.personas_logged = False

    def agent_ids(self) -> Sequence[AgentId]:
        return tuple(range(self.config.agents))

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[AgentId]:
        return self.agent_ids()

    def observe(self, agent_id: AgentId, tick: int) -> QuestionnaireView:
        return QuestionnaireView(tick, self.orders[agent_id])

    def annotate(self, agent_id: AgentId, observation: Any, action: Any) -> dict[str, Any]:
        return {"items": len(observation.items)}

    def apply(
        self,
        tick: int,
        actions: Mapping[AgentId, Any],
        rng: np.random.Generator,
        missed: Mapping[AgentId, Missed],
    ) -> dict[AgentId, Any]:
        records = self.pending.setdefault(tick, [])
        if not self.personas_logged:
            # Once, with the first turn applied: the personas go in tick 0's records.
            self.personas_logged = True
            self.pending.setdefault(0, []).extend(self.persona_records())
        for agent in missed:
            self.answered[agent].append(None)
        for agent, action in actions.items():
            questionnaire: Questionnaire = action
            self.answered[agent].append(questionnaire)
            for position, answer in enumerate(questionnaire.answers):
                records.append(
                    ProSimRating(
                        tick,
                        agent,
                        answer.scenario,
                        answer.intervention,
                        position,
                        answer.willingness,
                        answer.belief,
                        answer.desire,
                        answer.intention,
                    )
                )
        return {agent: len(action.answers) for agent, action in actions.items()}

    def persona_records(self) -> list[ProSimPersona]:
        return [persona_record(a, p, self.source) for a, p in enumerate(self.personas)]

    def tick_records(self, tick: int) -> list[LogRecord]:
        # Agents finish in any order on the free-running scheduler: the log's order is the
        # agents' (personas first), so one seed and one set of answers give one log.
        records = self.pending.pop(tick, [])
        return sorted(
            records, key=lambda r: (not isinstance(r, ProSimPersona), getattr(r, "agent", -1))
        )

    def metrics(self, tick: int) -> dict[str, Any]:
        done = [rows[tick] for rows in self.answered if len(rows) > tick]
        answers = [a for q in done if q is not None for a in q.answers]
        metrics: dict[str, Any] = {
            "answered": sum(q is not None for q in done),
            "missed": sum(q is None for q in done),
            "mean_willingness": _mean([a.willingness for a in answers]),
        }
        for intervention in self.config.interventions:
            metrics[f"willingness_{intervention}"] = _mean(
                [a.willingness for a in answers if a.intervention == intervention]
            )
        return metrics

    def digest(self, tick: int) -> str:
        # Free-running agents may be ahead of ``tick``: its state is each one's first turns.
        state = msgspec.json.encode([rows[: tick + 1] for rows in self.answered])
        return hashlib.blake2b(state, digest_size=16).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            "agents": self.config.agents,
            "scenarios": list(self.scenarios.keys),
            "scenario_file": self.scenarios.source,
            "scenario_digest": self.scenarios.digest,
            "interventions": list(self.config.interventions),
            "items_per_agent": len(self.orders[0]) if self.orders else 0,
            "personas": self.source,
        }


def _mean(values: Sequence[int]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


# ---- its words ---------------------------------------------------------------------------


class QuestionnairePrompts:
    def __init__(
        self, config: ScenariosConfig, personas: Sequence[Persona], scenarios: Scenarios
    ) -> None:
        self.config = config
        self.personas = tuple(personas)
        self.scenarios = scenarios
        self._asks = tuple(
            self._ask(Item(s.key, i)) for s in scenarios.items for i in config.interventions
        )

    def rules(self) -> str:
        reasons = (
            " With each rating, say in a sentence each what you believe about the situation, "
            "what you want, and what you intend to do."
            if self.config.reasons
            else ""
        )
        return (
            "You are taking part in a study of everyday decisions. You will read short "
            "situations, one at a time; some mention a policy that applies. For each, rate how "
            f"willing you are to help, from {WILLINGNESS_MIN} (not at all willing) to "
            f"{WILLINGNESS_MAX} (completely willing). There are no right answers: answer as "
            f"yourself.{reasons}"
        )

    def persona(self) -> str:
        return "You are participant #{agent}."

    def persona_of(self, agent_id: AgentId) -> str:
        return render(self.personas[agent_id])

    def shared_view(self, tick: int) -> str:
        return ""

    def private_view(self, agent_id: AgentId, observation: Any) -> str:
        view: QuestionnaireView = observation
        return f"You will rate {len(view.items)} situations."

    def _ask(self, item: Item) -> Ask:
        scale = {"type": "integer", "minimum": WILLINGNESS_MIN, "maximum": WILLINGNESS_MAX}
        text = {"type": "string", "maxLength": REASON_CHARS}
        fields = [AnswerField("willingness", f"{WILLINGNESS_MIN}–{WILLINGNESS_MAX}", schema=scale)]
        if self.config.reasons:
            fields += [
                AnswerField("belief", "what you believe about the situation", schema=text),
                AnswerField("desire", "what you want here", schema=text),
                AnswerField("intention", "what you intend to do", schema=text),
            ]
        return Ask(item.name, tuple(fields))

    def asks(self) -> Sequence[Ask]:
        return self._asks

    def next_ask(self, observation: Any, answers: Mapping[str, Any]) -> AskNow | None:
        view: QuestionnaireView = observation
        for number, item in enumerate(view.items, start=1):
            if item.name not in answers:
                return AskNow(item.name, self.item_text(item, number, len(view.items)))
        return None

    def item_text(self, item: Item, number: int, total: int) -> str:
        scenario = self.scenarios.by_key(item.scenario)
        policy = scenario.intervention_text(item.intervention)
        lines = [f"Situation {number} of {total}: {scenario.title}.", scenario.text]
        if policy:
            lines.append(f"Policy: {policy}")
        lines.append(
            f"How willing are you to help here, from {WILLINGNESS_MIN} to {WILLINGNESS_MAX}?"
        )
        return "\n".join(lines)

    def decode_ask(
        self, name: str, answer: Mapping[str, Any], observation: Any, answers: Mapping[str, Any]
    ) -> Any:
        value = answer.get("willingness")
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not WILLINGNESS_MIN <= value <= WILLINGNESS_MAX
        ):
            raise ValueError(
                f"willingness {value!r} is not a whole number from {WILLINGNESS_MIN} to "
                f"{WILLINGNESS_MAX}"
            )
        decoded: dict[str, Any] = {"willingness": value}
        if self.config.reasons:
            for key in REASONS:
                text = answer.get(key)
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"{key} is missing or empty; write a sentence")
                if len(text) > REASON_CHARS:
                    raise ValueError(f"{key} has {len(text)} characters, over {REASON_CHARS}")
                decoded[key] = text.strip()
        return decoded

    def decode_turn(self, observation: Any, answers: Mapping[str, Any]) -> Questionnaire:
        view: QuestionnaireView = observation
        return Questionnaire(
            tuple(
                ItemAnswer(item.scenario, item.intervention, **answers[item.name])
                for item in view.items
            )
        )

    def answer_fields(self) -> Sequence[AnswerField]:
        return ()

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Any:
        raise ValueError("this world's turns are its asks")

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        return f"questionnaire {tick + 1}: you rated {outcome} situations"
