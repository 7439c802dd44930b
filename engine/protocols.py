"""The four small protocols the engine drives, and the plugins that build them.

A world folder implements ``WorldPlugin`` (its state, its prompt texts, its offline behaviour);
``agents/`` implements ``AgentPlugin``; ``policies/`` implements ``PolicyPlugin``. The engine finds
them by name (entry points) and never imports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from agora.engine.records import (
    AgentId,
    Completion,
    EndpointReport,
    Invalid,
    LogRecord,
    Parsed,
    Request,
    Turn,
)
from agora.engine.seeding import Seeds

# Why an agent with a turn has no action in its tick: no usable answer, or no answer at all.
Missed = Literal["invalid", "error"]


@dataclass(frozen=True, slots=True)
class AnswerField:
    """One field of the JSON answer an agent is asked for, as shown in the prompt.

    ``schema`` is the field's JSON Schema (``{"type": "string", "maxLength": 280}``): servers
    that constrain decoding keep the answer inside it. None: any JSON value."""

    name: str
    description: str
    required: bool = True
    schema: Mapping[str, Any] | None = None


@runtime_checkable
class World(Protocol):
    """The shared state agents act on.

    ``independent`` worlds promise that no agent's turn reads or writes another agent's
    state, so the scheduler may let each agent run ahead without a tick barrier.
    """

    @property
    def independent(self) -> bool: ...

    def agent_ids(self) -> Sequence[AgentId]: ...

    def active_agents(self, tick: int, rng: np.random.Generator) -> Sequence[AgentId]:
        """Who decides this tick (all, or a seeded fraction)."""
        ...

    def observe(self, agent_id: AgentId, tick: int) -> Any:
        """The agent's view of the state it decides on in ``tick``, as a ``msgspec.Struct``."""
        ...

    def annotate(self, agent_id: AgentId, observation: Any, action: Any) -> dict[str, Any]:
        """Per-decision facts for the log, computed against the state the agent saw."""
        ...

    def apply(
        self,
        tick: int,
        actions: Mapping[AgentId, Any],
        rng: np.random.Generator,
        missed: Mapping[AgentId, Missed],
    ) -> dict[AgentId, Any]:
        """Apply the tick's valid actions at once.

        ``missed`` names the agents that had a turn in ``tick`` but no valid action, and why
        (``"invalid"``: no usable answer after the re-asks; ``"error"``: no answer at all), so
        per-agent bookkeeping (rounds played, histories) stays aligned with the ticks. On the
        free-running scheduler each agent's turn is applied alone: ``actions`` and ``missed``
        then hold that one agent. Returns each acting agent's outcome."""
        ...

    def metrics(self, tick: int) -> dict[str, Any]: ...

    def digest(self, tick: int) -> str:
        """A hash of the state at the end of ``tick``; replay and resume compare it."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts about the built world for the run header (sizes, optimum, ...)."""
        ...


class WorldPrompts(Protocol):
    """A world's prompt texts and its answer format: the world owns its words."""

    def rules(self) -> str: ...

    def persona(self) -> str:
        """Who an agent is, by default ("You are player #{agent}."; "{agent}": its number)."""
        ...

    def shared_view(self, tick: int) -> str:
        """The part of the view every agent sees this tick (goes early, for prefix caches)."""
        ...

    def private_view(self, agent_id: AgentId, observation: Any) -> str: ...

    def answer_fields(self) -> Sequence[AnswerField]: ...

    def decode_action(self, answer: Mapping[str, Any], observation: Any) -> Any:
        """Turn the answer's fields into the world's action, or raise ``ValueError`` saying why."""
        ...

    def describe_outcome(self, tick: int, outcome: Any) -> str:
        """The whole line for the agent's memory about what its action in ``tick`` led to
        (the world's words, e.g. "round 3: you stayed ...")."""
        ...


@dataclass(frozen=True, slots=True)
class Ask:
    """One call of a multi-ask turn, as the world declares it once for the run.

    ``fields`` are the answer's fields for this call (its schema is built once from them);
    ``max_reasks`` is its own re-ask budget (None: the run's ``inference.max_reasks``);
    ``policies``: whether the policies' answer fields (a board post) are asked in this call;
    ``reasoning``: whether the answer must carry a non-empty ``"reasoning"`` (a rating on a
    scale needs none, a choice does); ``free_text``: the answer is prose, not JSON (a message,
    a justification), given to ``decode_ask`` as ``{"text": ...}``; its prompt says what to
    write and ``fields`` are not shown."""

    name: str
    fields: Sequence[AnswerField]
    max_reasks: int | None = None
    policies: bool = False
    reasoning: bool = False
    free_text: bool = False


@dataclass(frozen=True, slots=True)
class AskNow:
    """The ask a turn makes next: which declared ask, and its words for this agent now."""

    name: str
    prompt: str


@runtime_checkable
class AsksInTurns(Protocol):
    """World prompts whose turn is a sequence of asks in one conversation (a questionnaire,
    rate → choose → rate again) rather than one answer. Optional: a world without it has one
    ask per turn, built from ``answer_fields`` and ``decode_action``.

    The engine asks ``next_ask`` until it returns None; each answer is decoded by
    ``decode_ask`` (a ``ValueError`` makes it invalid and re-asked within the ask's budget)
    and the earlier asks' decoded answers, by ask name, are given to every later call. A turn
    whose ask stays invalid ends there: the agent missed it ("invalid")."""

    def asks(self) -> Sequence[Ask]:
        """Every ask a turn may make, declared once (prompts, schemas, budgets)."""
        ...

    def next_ask(self, observation: Any, answers: Mapping[str, Any]) -> AskNow | None:
        """The next ask given the answers so far (empty at the start), or None: turn over."""
        ...

    def decode_ask(
        self, name: str, answer: Mapping[str, Any], observation: Any, answers: Mapping[str, Any]
    ) -> Any:
        """One ask's answer as the JSON-able value the world keeps, or ``ValueError`` why not."""
        ...

    def decode_turn(self, observation: Any, answers: Mapping[str, Any]) -> Any:
        """The turn's action from all its answers."""
        ...


def asks_in_turns(prompts: WorldPrompts) -> AsksInTurns | None:
    return prompts if isinstance(prompts, AsksInTurns) else None


@runtime_checkable
class PersonaPerAgent(Protocol):
    """World prompts whose agents each have a persona of their own (a psychometric profile, a
    biography). Optional: without it every agent gets ``persona()`` with its number.

    The LLM agent puts it in the agent's system text after the rules, the prefix every request
    of that agent shares, so a prefix-caching server keeps it across ticks (the rules stay the
    prefix all agents share). ``agents.persona`` in a config still overrides it."""

    def persona_of(self, agent_id: AgentId) -> str: ...


class OfflineBehaviour(Protocol):
    """The seeded behavioural model that stands in for a model on the offline backend."""

    def decide(
        self,
        agent_id: AgentId,
        observation: Any,
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        """Return the answer's world fields (reasoning included) and the agent's stance label.

        ``signals`` is what the policies' views say, reduced to the share of what the agent sees
        that speaks for each stance (e.g. ``{"cooperative": 0.3}``), so a model of social
        influence can react to a message board without knowing its types.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """The behavioural model's make-up (e.g. who holds which stance) for the run header."""
        ...


@runtime_checkable
class AnswersAsks(Protocol):
    """An offline behaviour that answers the asks of multi-ask turns (optional)."""

    def answer_ask(
        self,
        agent_id: AgentId,
        ask: str,
        observation: Any,
        answers: Mapping[str, Any],
        rng: np.random.Generator,
        signals: Mapping[str, float],
    ) -> tuple[dict[str, Any], str]:
        """The answer's fields for ``ask`` given the earlier answers, and the stance label the
        policies write in their fields when the ask carries them (as ``decide``)."""
        ...


@runtime_checkable
class Remembers(Protocol):
    """An offline behaviour with state of its own (a belief updated by prediction error).

    Its state must be a function of the outcomes it was told: the engine tells it every
    outcome, each agent's in tick order, in a run, a resume (which rebuilds it by replay) and a
    replay, so a killed run resumes with the state an unbroken one would have had. Keep it
    per agent: across agents the order differs (free-running agents finish in any order)."""

    def remember(self, agent_id: AgentId, tick: int, outcome: Any) -> None: ...


class Policy(Protocol):
    """A service beside the world that agents see and act on (a message board, an institution)."""

    name: str

    def view(self, agent_id: AgentId, tick: int) -> Any:
        """What the agent sees in ``tick``. Runs, resumes, replays and renderings call it in
        different orders (free-running agents ahead of a tick's close): it must change no state
        that ``digest`` covers."""
        ...

    def render(self, view: Any) -> str: ...

    def answer_fields(self) -> Sequence[AnswerField]: ...

    def absorb(
        self, tick: int, agent_id: AgentId, fields: Mapping[str, Any], view: Any
    ) -> tuple[list[LogRecord], list[str]]:
        """Take the agent's policy fields; return the records to log and any notes on them."""
        ...

    def end_tick(self, tick: int) -> tuple[list[LogRecord], dict[str, Any]]:
        """Close the tick (e.g. prune the board); return records to log and the tick's metrics."""
        ...

    def offline_fields(
        self, agent_id: AgentId, view: Any, stance: str, rng: np.random.Generator
    ) -> dict[str, Any]:
        """What the offline behavioural model writes in this policy's fields."""
        ...

    def offline_signals(self, view: Any) -> Mapping[str, float]:
        """The share of this view that speaks for each stance, for the offline model."""
        ...

    def digest(self) -> str: ...


@runtime_checkable
class SeesPolicies(Protocol):
    """A world whose rules react to what the run's policies show its agents (an
    institution's unfair treatment of a few agents that then spreads along a graph).
    Optional. The engine hands it the run's policies once they are built, in a run, a resume
    and a replay alike; it may read their ``view`` and ``offline_signals`` (which change no
    state), never call anything else, so the world's state stays a function of the seed and
    the answers."""

    def see_policies(self, policies: Sequence[Policy]) -> None: ...


@runtime_checkable
class SpeaksFor(Protocol):
    """A policy that names the stances its ``offline_signals`` carry, so a world that reacts
    to one (``SeesPolicies``) can refuse a run where no policy speaks for it (a typo'd stance
    would otherwise make a silent null condition). Optional."""

    @property
    def stances(self) -> frozenset[str]: ...


def show_policies(world: World, policies: Sequence[Policy]) -> None:
    if isinstance(world, SeesPolicies):
        world.see_policies(tuple(policies))


class Agent(Protocol):
    agent_id: AgentId

    def request(self, turn: Turn, seed: int) -> Request: ...

    def parse(self, text: str, turn: Turn) -> Parsed | Invalid: ...

    def reask(self, request: Request, invalid: Invalid, seed: int) -> Request:
        """The follow-up request after an invalid answer."""
        ...

    def remember(self, tick: int, outcome: Any) -> None: ...


@runtime_checkable
class MultiAskAgent(Agent, Protocol):
    """An agent that can take multi-ask turns (``AsksInTurns`` worlds); the LLM agent can."""

    def ask_request(
        self,
        turn: Turn,
        ask: AskNow,
        earlier: Sequence[tuple[AskNow, str]],
        answers: Mapping[str, Any],
        seed: int,
    ) -> Request:
        """The request for one ask of a multi-ask turn: the turn's context, the earlier asks
        with their valid answers' texts (one conversation), then this ask."""
        ...

    def parse_ask(
        self, text: str, turn: Turn, ask: AskNow, answers: Mapping[str, Any]
    ) -> Parsed | Invalid:
        """One ask's answer: ``Parsed.action`` holds the ask's decoded value."""
        ...


class LLMClient(Protocol):
    """Anything that turns a ``Request`` into a ``Completion``: a transport or a layer around one.

    Raises ``engine.inference.errors.InferenceError`` when no answer could be had.
    """

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def complete(self, request: Request) -> Completion: ...

    async def prepare(self, known: Mapping[str, Any]) -> dict[str, Any]:
        """Before the run: learn what the servers take (probes), or adopt ``known``, what a
        resumed run's header recorded. Returns the facts for the run header."""
        ...

    def reports(self) -> list[EndpointReport]:
        """What the run learnt about each endpoint (the pace it settled on), for the summary."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WorldParts:
    world: World
    prompts: WorldPrompts
    offline: OfflineBehaviour


class WorldPlugin(Protocol):
    name: str
    config_type: type[Any]
    # The type of the world's actions, to read them back from a log.
    action_type: type[Any]

    def build(self, config: Any, seeds: Seeds) -> WorldParts: ...


class AgentPlugin(Protocol):
    name: str
    config_type: type[Any]

    def build(
        self,
        config: Any,
        agent_ids: Sequence[AgentId],
        prompts: WorldPrompts,
        policies: Sequence[Policy],
        sampling: Any,
    ) -> dict[AgentId, Agent]: ...


class PolicyPlugin(Protocol):
    name: str
    config_type: type[Any]
    # True when what one agent gives the policy reaches what another sees (a board): such a
    # policy needs a shared tick, so it cannot run on an ``independent`` world. A text
    # intervention each agent sees alone shares nothing.
    shares_state: bool

    def build(self, config: Any, seeds: Seeds, name: str, world: World) -> Policy:
        """The policy for one run; it may read ``world`` (a graph, incomes), never write it."""
        ...
