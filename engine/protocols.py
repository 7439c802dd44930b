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


class Policy(Protocol):
    """A service beside the world that agents see and act on (a message board, an institution)."""

    name: str

    def view(self, agent_id: AgentId, tick: int) -> Any: ...

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


class Agent(Protocol):
    agent_id: AgentId

    def request(self, turn: Turn, seed: int) -> Request: ...

    def parse(self, text: str, turn: Turn) -> Parsed | Invalid: ...

    def reask(self, request: Request, invalid: Invalid, seed: int) -> Request:
        """The follow-up request after an invalid answer."""
        ...

    def remember(self, tick: int, outcome: Any) -> None: ...


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
