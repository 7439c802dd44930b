"""Study 3: prosocial willingness on a social graph, and the contagion of policy-induced
inequity (``../shared/specs/prosim.md``).

Days are ticks. Each day a fixed share of the edges is active: round(``activation_rate`` ×
edges) of them, drawn without replacement from the day's stream ``prosim-edges``. An
institution's policy (``policies/inequity.py``) treats a few seed agents unfairly; the world
learns whom from what the policies show each agent (the ``treatment_signal`` stance of their
signals, ``SeesPolicies``; a run where no policy speaks for it is refused) and marks them
``seed`` from the first day they are treated. Every agent then rates, each day, its
willingness to do the scenario's prosocial act and how unfair things feel (1–7), seeing its
own last ``memory_days`` days.

**Exposure**: an agent with an active edge today to an agent affected (or seed) at the end of
yesterday is told that its close teammates refused again after being treated unfairly (a
``prosim_delivery`` record per edge and day).
**Contagion**: an exposed agent becomes ``affected`` (for the rest of the run) when its
willingness today is below, and its unfairness above, its last answered day's. A day it
missed (no usable answer) changes nothing and is skipped in that comparison.

Records: ``prosim_day`` (each answered day), ``prosim_delivery`` (each exposure along an
active edge), ``prosim_change`` (each state change, with its cause and who exposed it),
``prosim_persona`` (once). ``agora replay --frames`` draws the graph day by day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import networkx as nx
import numpy as np

from agora.engine.config import ConfigError
from agora.engine.protocols import AnswerField, Missed, Policy, SpeaksFor
from agora.engine.records import AgentId, LogRecord
from agora.engine.seeding import Seeds
from agora.worlds.prosim.config import NetworkConfig
from agora.worlds.prosim.personas import Persona, render
from agora.worlds.prosim.records import ProSimPersona, persona_record
from agora.worlds.prosim.texts import Scenario

State = Literal["unaffected", "seed", "affected"]
SCALE_MIN, SCALE_MAX = 1, 7


class PastDay(msgspec.Struct, frozen=True, array_like=True):
    day: int
    willingness: int
    unfairness: int
    # Treated by the institution or told of teammates' refusals that day.
    hurt: bool


class DayView(msgspec.Struct, frozen=True):
    day: int  # 1-based (tick + 1)
    history: tuple[PastDay, ...]
    # The affected agents on an active edge with this one today (who tells it of refusals).
    exposures: tuple[AgentId, ...]


class DayAnswer(msgspec.Struct, frozen=True):
    willingness: int
    unfairness: int
    reasoning: str


class DayOutcome(msgspec.Struct, frozen=True):
    day: int
    willingness: int
    unfairness: int
    exposures: int
    treated: bool
    state: State


class ProSimDay(LogRecord, tag="prosim_day"):
    """One agent's answered day: ratings, what reached it, and its state at the day's end."""

    tick: int
    agent: AgentId
    willingness: int
    unfairness: int
    reasoning: str
    exposures: int
    treated: bool
    state: State


class ProSimDelivery(LogRecord, tag="prosim_delivery"):
    """An affected agent's refusal told along an active edge (``sender`` → ``recipient``)."""

    tick: int
    sender: AgentId
    recipient: AgentId


class ProSimChange(LogRecord, tag="prosim_change"):
    """A state change: ``cause`` "treated" (a seed) or "exposed" (the contagion rule), with
    the ratings it was judged on and the affected agents that exposed it."""

    tick: int
    agent: AgentId
    state: State
    cause: Literal["treated", "exposed"]
    willingness: int | None
    unfairness: int | None
    previous_willingness: int | None
    previous_unfairness: int | None
    exposed_by: list[AgentId]


class NetworkWorld:
    independent = False  # who is affected today reaches a neighbour's view tomorrow

    def __init__(
        self,
        config: NetworkConfig,
        graph: nx.Graph,
        personas: Sequence[Persona],
        scenario: Scenario,
        seeds: Seeds,
        source: str,
    ) -> None:
        self.config = config
        self.graph = graph
        self.personas = tuple(personas)
        self.scenario = scenario
        self.seeds = seeds
        self.source = source
        self.edges: tuple[tuple[int, int], ...] = tuple(
            sorted((min(a, b), max(a, b)) for a, b in graph.edges())
        )
        agents = config.agents
        self.state: list[State] = ["unaffected"] * agents
        # Per agent, per tick it had a turn: its day, or None when it missed it.
        self.days: list[list[PastDay | None]] = [[] for _ in range(agents)]
        self.policies: tuple[Policy, ...] = ()
        self._exposures: dict[int, dict[AgentId, tuple[AgentId, ...]]] = {}
        self._active: dict[int, tuple[tuple[int, int], ...]] = {}
        self.pending: dict[int, list[LogRecord]] = {}
        self.personas_logged = False
        self.last_tick = -1
        self.tallies: dict[int, dict[str, int]] = {}

    # -- what the engine hands it -------------------------------------------------------

    def see_policies(self, policies: Sequence[Policy]) -> None:
        signal = self.config.treatment_signal
        spoken = sorted({s for p in policies if isinstance(p, SpeaksFor) for s in p.stances})
        if spoken and signal not in spoken:
            raise ConfigError(
                f"world.treatment_signal: no policy speaks for {signal!r} (they speak for "
                f"{', '.join(spoken)}); set it to one of those, or the policy's stance to it"
            )
        self.policies = tuple(policies)

    def score_known_from(self, key: str) -> int:
        """The first tick at which ``agent_score(…, key)`` is known: 0 for a persona's
        scores, 1 for ``willingness`` (an answer of the first day)."""
        if key == "willingness":
            return 1
        self.agent_score(0, key)  # KeyError for a score it does not have
        return 0

    def agent_score(self, agent_id: AgentId, key: str) -> float:
        """What a policy may rank agents by when it picks whom to treat (read-only):
        ``income``, ``prosociality`` or a trait of the persona, or ``willingness``, the
        agent's rating on the first day (NaN before that day or when it missed it)."""
        persona = self.personas[agent_id]
        if key == "willingness":
            days = self.days[agent_id]
            first = days[0] if days else None
            return float(first.willingness) if first is not None else float("nan")
        if key == "income":
            return float(persona.income)
        if key == "prosociality":
            return persona.prosociality
        if key in persona.scores:
            return persona.scores[key]
        raise KeyError(key)

    def treated(self, agent_id: AgentId, tick: int) -> bool:
        signal = self.config.treatment_signal
        return any(
            policy.offline_signals(policy.view(agent_id, tick)).get(signal, 0.0) > 0.0
            for policy in self.policies
        )

    # -- the day's graph ------------------------------------------------------------------

    def active_edges(self, tick: int) -> tuple[tuple[int, int], ...]:
        if tick not in self._active:
            count = round(self.config.activation_rate * len(self.edges))
            picked = self.seeds.rng("prosim-edges", tick).choice(
                len(self.edges), size=count, replace=False
            )
            self._active[tick] = tuple(self.edges[i] for i in sorted(picked))
        return self._active[tick]

    def exposures(self, tick: int) -> dict[AgentId, tuple[AgentId, ...]]:
        """Who tells whom today, from the states at the end of yesterday. Made once per day,
        before that day's answers change any state (``apply`` asks first)."""
        if tick not in self._exposures:
            told: dict[AgentId, list[AgentId]] = {}
            for a, b in self.active_edges(tick):
                if self.state[a] != "unaffected":
                    told.setdefault(b, []).append(a)
                if self.state[b] != "unaffected":
                    told.setdefault(a, []).append(b)
            self._exposures[tick] = {r: tuple(sorted(s)) for r, s in sorted(told.items())}
        return self._exposures[tick]

    # -- the World protocol -----------------------------------------------------------------

    def agent_ids(self) -> Sequence[AgentId]:
        return tuple(range(self.config.agents))

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[AgentId]:
        return self.agent_ids()

    def observe(self, agent_id: AgentId, tick: int) -> DayView:
        past = [d for d in self.days[agent_id][:tick] if d is not None]
        memory = self.config.memory_days
        shown = tuple(past[-memory:]) if memory else ()
        return DayView(tick + 1, shown, self.exposures(tick).get(agent_id, ()))

    def annotate(self, agent_id: AgentId, observation: Any, action: Any) -> dict[str, Any]:
        return {"exposures": len(observation.exposures), "state": self.state[agent_id]}

    def apply(
        self,
        tick: int,
        actions: Mapping[AgentId, Any],
        rng: np.random.Generator,
        missed: Mapping[AgentId, Missed],
    ) -> dict[AgentId, Any]:
        exposures = self.exposures(tick)
        records = self.pending.setdefault(tick, [])
        if not self.personas_logged:
            self.personas_logged = True
            self.pending.setdefault(0, []).extend(self.persona_records())
        for recipient, senders in exposures.items():
            records.extend(ProSimDelivery(tick, s, recipient) for s in senders)
        treated = {a for a in self.agent_ids() if self.treated(a, tick)}
        changed = 0
        for agent in sorted(treated):
            if self.state[agent] == "unaffected":
                self.state[agent] = "seed"
                changed += 1
                answer = actions.get(agent)
                records.append(
                    ProSimChange(
                        tick,
                        agent,
                        "seed",
                        "treated",
                        answer.willingness if answer else None,
                        answer.unfairness if answer else None,
                        None,
                        None,
                        [],
                    )
                )
        outcomes: dict[AgentId, Any] = {}
        for agent in self.agent_ids():
            answer = actions.get(agent)
            if answer is None:
                if agent in missed:
                    self.days[agent].append(None)
                continue
            senders = exposures.get(agent, ())
            before = next((d for d in reversed(self.days[agent]) if d is not None), None)
            self.days[agent].append(
                PastDay(
                    tick + 1,
                    answer.willingness,
                    answer.unfairness,
                    bool(senders) or agent in treated,
                )
            )
            if (
                self.state[agent] == "unaffected"
                and senders
                and before is not None
                and answer.willingness < before.willingness
                and answer.unfairness > before.unfairness
            ):
                self.state[agent] = "affected"
                changed += 1
                records.append(
                    ProSimChange(
                        tick,
                        agent,
                        "affected",
                        "exposed",
                        answer.willingness,
                        answer.unfairness,
                        before.willingness,
                        before.unfairness,
                        list(senders),
                    )
                )
            records.append(
                ProSimDay(
                    tick,
                    agent,
                    answer.willingness,
                    answer.unfairness,
                    answer.reasoning,
                    len(senders),
                    agent in treated,
                    self.state[agent],
                )
            )
            outcomes[agent] = DayOutcome(
                tick + 1,
                answer.willingness,
                answer.unfairness,
                len(senders),
                agent in treated,
                self.state[agent],
            )
        self.tallies[tick] = {
            "answered": len(actions),
            "missed": len(missed),
            "exposed": len(exposures),
            "deliveries": sum(len(s) for s in exposures.values()),
            "treated": len(treated),
            "changed": changed,
        }
        self.last_tick = tick
        return outcomes

    def persona_records(self) -> list[ProSimPersona]:
        return [persona_record(a, p, self.source) for a, p in enumerate(self.personas)]

    def tick_records(self, tick: int) -> list[LogRecord]:
        return self.pending.pop(tick, [])

    def metrics(self, tick: int) -> dict[str, Any]:
        tally = self.tallies[tick]
        today = [rows[tick] for rows in self.days if len(rows) > tick and rows[tick] is not None]
        affected = sum(s != "unaffected" for s in self.state)
        return {
            **tally,
            "affected": affected,
            "affected_share": round(affected / self.config.agents, 4),
            "mean_willingness": _mean([d.willingness for d in today if d is not None]),
            "mean_unfairness": _mean([d.unfairness for d in today if d is not None]),
        }

    def digest(self, tick: int) -> str:
        state = msgspec.json.encode([self.state, self.days])
        return hashlib.blake2b(state, digest_size=16).hexdigest()

    def describe(self) -> dict[str, Any]:
        graph = self.graph
        connected = nx.is_connected(graph) if graph.number_of_nodes() else False
        return {
            "agents": self.config.agents,
            "edges": graph.number_of_edges(),
            "clustering": round(nx.average_clustering(graph), 4),
            "mean_shortest_path": (
                round(nx.average_shortest_path_length(graph), 4) if connected else None
            ),
            "graph": self.config.graph.file or "watts_strogatz",
            "scenario": self.scenario.key,
            "personas": self.source,
        }


def _mean(values: Sequence[int]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


# ---- its words -----------------------------------------------------------------------------


class NetworkPrompts:
    def __init__(
        self, config: NetworkConfig, personas: Sequence[Persona], scenario: Scenario
    ) -> None:
        self.config = config
        self.personas = tuple(personas)
        self.scenario = scenario

    def rules(self) -> str:
        return (
            "You live in a community and work with a few close teammates. Every day you are "
            "asked about the same thing: "
            f"{self.scenario.title.lower()}. {self.scenario.text} Each day, rate how willing "
            f"you are to do it, from {SCALE_MIN} (not at all) to {SCALE_MAX} (completely), and "
            f"how unfair things feel to you, from {SCALE_MIN} (completely fair) to "
            f"{SCALE_MAX} (extremely unfair)."
        )

    def persona(self) -> str:
        return "You are resident #{agent}."

    def persona_of(self, agent_id: AgentId) -> str:
        return render(self.personas[agent_id])

    def shared_view(self, tick: int) -> str:
        return f"Day {tick + 1}."

    def private_view(self, agent_id: AgentId, observation: Any) -> str:
        view: DayView = observation
        lines: list[str] = []
        if view.history:
            lines.append("Your last days:")
            lines += [
                f"- day {d.day}: willingness {d.willingness}, unfairness {d.unfairness}"
                for d in view.history
            ]
        if view.exposures:
            who = ", ".join(f"#{a}" for a in view.exposures)
            lines.append(
                f"Today your close teammates {who} told you they refused again, after being "
                "treated unfairly."
            )
        return "\n".join(lines) if lines else "This is your first day."

    def answer_fields(self) -> Sequence[AnswerField]:
        scale = {"type": "integer", "minimum": SCALE_MIN, "maximum": SCALE_MAX}
        return (
            AnswerField("reasoning", "why, in a sentence or two"),
            AnswerField("willingness", f"{SCALE_MIN}–{SCALE_MAX}", schema=scale),
            AnswerField("unfairness", f"{SCALE_MIN}–{SCALE_MAX}", schema=scale),
        )

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> DayAnswer:
        values = []
        for key in ("willingness", "unfairness"):
            value = answer.get(key)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not SCALE_MIN <= value <= SCALE_MAX
            ):
                raise ValueError(
                    f"{key} {value!r} is not a whole number from {SCALE_MIN} to {SCALE_MAX}"
                )
            values.append(value)
        reasoning = answer.get("reasoning")
        return DayAnswer(values[0], values[1], reasoning if isinstance(reasoning, str) else "")

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        day: DayOutcome = outcome
        return (
            f"day {day.day}: you rated willingness {day.willingness} and unfairness "
            f"{day.unfairness}"
        )
