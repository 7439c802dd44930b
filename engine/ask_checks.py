"""A multi-ask world's turns, checked once before a run starts rather than turn by turn.

A mistake in a world's asks (two asks of one name, a negative budget, a half-implemented
protocol) or a part that cannot take part in them (an agent without ``ask_request``, an
offline behaviour without ``answer_ask``) would otherwise surface as one errored decision per
turn until the run's error rate stops it. Each is reported as one line naming the part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from agora.engine.config import ConfigError
from agora.engine.protocols import (
    Agent,
    AnswersAsks,
    AsksInTurns,
    MultiAskAgent,
    Policy,
    WorldParts,
    WorldPrompts,
    asks_in_turns,
)
from agora.engine.records import AgentId

_log = structlog.get_logger("agora.asks")

_ASK_METHODS = ("asks", "next_ask", "decode_ask", "decode_turn")


def checked_turns(
    parts: WorldParts,
    agents: Mapping[AgentId, Agent],
    policies: Sequence[Policy],
    offline_backend: bool,
) -> AsksInTurns | None:
    """The world's ``AsksInTurns`` (None for one-ask turns), or a ``ConfigError`` saying what
    in the world or its parts cannot run them."""
    multi = world_asks(parts.prompts)
    if multi is None:
        return None
    lacking = next((a for a in agents.values() if not isinstance(a, MultiAskAgent)), None)
    if lacking is not None:
        raise ConfigError(
            f"agents: {type(lacking).__name__} has no ask_request and parse_ask, and this "
            "world's turns have several asks"
        )
    if offline_backend and not isinstance(parts.offline, AnswersAsks):
        raise ConfigError(
            f"world offline behaviour: {type(parts.offline).__name__} has no answer_ask, and "
            "this world's turns have several asks: the offline backend cannot answer them"
        )
    asked = [p.name for p in policies if p.answer_fields()]
    if asked and not any(ask.policies for ask in multi.asks()):
        # Legitimate (a world may keep its agents from writing to a policy), and surprising.
        _log.warning("no ask carries the policies' answer fields", policies=asked)
    return multi


def world_asks(prompts: WorldPrompts) -> AsksInTurns | None:
    """The prompts' ``AsksInTurns`` with its asks checked, None for one-ask turns; checked
    before agents are built from the prompts, so a half-made protocol is named as such."""
    multi = asks_in_turns(prompts)
    named = type(prompts).__name__
    if multi is None:
        present = [m for m in _ASK_METHODS if callable(getattr(prompts, m, None))]
        if present:
            missing = [m for m in _ASK_METHODS if m not in present]
            raise ConfigError(
                f"world prompts: {named} has {', '.join(present)} but not {', '.join(missing)}: "
                "a world of multi-ask turns implements all four (AsksInTurns)"
            )
        return None
    seen: set[str] = set()
    for ask in multi.asks():
        if ask.name in seen:
            raise ConfigError(f"world asks: two asks are named {ask.name!r}; give each its own")
        seen.add(ask.name)
        if ask.max_reasks is not None and ask.max_reasks < 0:
            raise ConfigError(
                f"world asks: {ask.name!r} has max_reasks {ask.max_reasks}; give 0 or more "
                "(None: the run's inference.max_reasks)"
            )
        if ask.free_text and ask.fields:
            raise ConfigError(
                f"world asks: {ask.name!r} is free text, which shows no fields; give it none "
                "(its prompt says what to write)"
            )
    return multi
