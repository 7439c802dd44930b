"""The LLM agent: composes the prompt from the world's and the policies' parts, reads the answer.

Prompt order puts what is shared first (rules, then this tick's shared view and policy views,
then the persona, memory and the agent's own options) so prefix-caching servers reuse the most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from agora.engine.answer_json import extract_json_object, extract_text
from agora.engine.protocols import (
    AnswerField,
    Ask,
    AskNow,
    PersonaPerAgent,
    Policy,
    WorldPrompts,
    asks_in_turns,
)
from agora.engine.records import AgentId, AskCall, Invalid, Message, Parsed, Request, Turn

_ECHO_LIMIT = 2000
# A reason may quote the value it could not use; the re-ask needs the gist, not 64 KiB of it.
_REASON_LIMIT = 500


class LLMAgentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "llm"
    # "{agent}" is replaced by the agent's number; unset, the world's own persona is used
    # (the world names who its agents are).
    persona: str | None = None
    # How many of its own past outcomes an agent is reminded of.
    memory: Annotated[int, msgspec.Meta(ge=0)] = 3
    # Reasoning is what the analyses code; an answer without it is re-asked.
    require_reasoning: bool = True


class Sampling(msgspec.Struct, frozen=True):
    temperature: float = 0.7
    max_tokens: int = 512
    # ``inference.params``: on every request, so the decision records what it was asked with.
    params: dict[str, Any] = msgspec.field(default_factory=dict)


def answer_schema(fields: Sequence[AnswerField]) -> dict[str, Any]:
    """The answer as one JSON Schema, for servers that constrain decoding to it.

    No other properties are allowed: a constrained model then cannot spend its tokens on
    fields nobody reads. A field without a schema of its own may hold any JSON value."""
    return {
        "type": "object",
        "properties": {f.name: dict(f.schema) if f.schema is not None else {} for f in fields},
        "required": [f.name for f in fields if f.required],
        "additionalProperties": False,
    }


def answer_format(fields: Sequence[AnswerField]) -> str:
    lines = ["Answer with one JSON object and nothing else, with these fields:"]
    for field in fields:
        optional = "" if field.required else " (optional)"
        lines.append(f'- "{field.name}"{optional}: {field.description}')
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class AskForm:
    """One declared ask as every agent sends it: its schema (one object, shared, so batches
    group by it) and the answer format text."""

    ask: Ask
    schema: dict[str, Any] | None
    answer_format: str

    @classmethod
    def of(cls, ask: Ask, policy_fields: Sequence[AnswerField]) -> AskForm:
        if ask.free_text:
            return cls(ask, None, "")
        fields = [*ask.fields, *(policy_fields if ask.policies else ())]
        if ask.reasoning and not any(f.name == "reasoning" for f in fields):
            # Required, so a server that constrains decoding to the schema can write it.
            fields.insert(0, AnswerField("reasoning", "why you answer as you do"))
        return cls(ask, answer_schema(fields), answer_format(fields))


class LLMAgent:
    def __init__(
        self,
        agent_id: AgentId,
        config: LLMAgentConfig,
        prompts: WorldPrompts,
        policies: Sequence[Policy],
        system: str,
        sampling: Sampling,
        schema: dict[str, Any] | None = None,
        asks: Mapping[str, AskForm] | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self.prompts = prompts
        self.policies = policies
        self.system = system
        self.sampling = sampling
        # One object shared by every agent: batches group requests by its identity.
        self.schema = schema
        # A multi-ask world's asks, each with its schema and answer format built once.
        self.asks = asks
        self.multi = asks_in_turns(prompts) if asks is not None else None
        if config.persona is None and isinstance(prompts, PersonaPerAgent):
            # Its own, long and fixed: in its system text, a prefix it shares across ticks.
            self.system = f"{system}\n\n{prompts.persona_of(agent_id)}"
            self.persona = ""
        else:
            template = config.persona if config.persona is not None else prompts.persona()
            self.persona = template.replace("{agent}", str(agent_id))
        self.memory: deque[str] = deque(maxlen=config.memory)

    def request(self, turn: Turn, seed: int) -> Request:
        messages = (
            Message("system", self.system),
            Message("user", self._context(turn)),
        )
        return Request(
            agent_id=self.agent_id,
            tick=turn.tick,
            messages=messages,
            seed=seed,
            temperature=self.sampling.temperature,
            max_tokens=self.sampling.max_tokens,
            answer_schema=self.schema,
            turn=turn,
            params=dict(self.sampling.params),
        )

    def ask_request(
        self,
        turn: Turn,
        ask: AskNow,
        earlier: Sequence[tuple[AskNow, str]],
        answers: Mapping[str, Any],
        seed: int,
    ) -> Request:
        """One conversation: the turn's context opens it, each earlier ask follows with the
        answer that was used (not the re-asked ones: they would only teach the mistakes)."""
        if self.asks is None:
            raise RuntimeError("this world's turns have one ask")
        messages: list[Message] = [Message("system", self.system)]
        context = self._context(turn)
        for index, (asked, answer) in enumerate(earlier):
            messages.append(Message("user", self._ask_text(asked, context if index == 0 else "")))
            messages.append(Message("assistant", answer))
        messages.append(Message("user", self._ask_text(ask, "" if earlier else context)))
        form = self.asks[ask.name]
        return Request(
            agent_id=self.agent_id,
            tick=turn.tick,
            messages=tuple(messages),
            seed=seed,
            temperature=self.sampling.temperature,
            max_tokens=self.sampling.max_tokens,
            json_answer=not form.ask.free_text,
            answer_schema=form.schema,
            turn=turn,
            params=dict(self.sampling.params),
            ask=AskCall(ask.name, dict(answers), form.ask.policies, form.ask.free_text),
        )

    def _ask_text(self, ask: AskNow, context: str) -> str:
        assert self.asks is not None
        form = self.asks[ask.name].answer_format
        text = ask.prompt + "\n\n" + form if form else ask.prompt
        return context + "\n\n" + text if context else text

    def parse_ask(
        self, text: str, turn: Turn, ask: AskNow, answers: Mapping[str, Any]
    ) -> Parsed | Invalid:
        try:
            return self._parse_ask(text, turn, ask, answers)
        except ValueError as exc:
            return _invalid(text, str(exc))
        except Exception as exc:  # as ``parse``: odd values trip decoders in other ways
            return _invalid(text, f"the answer could not be read ({type(exc).__name__}: {exc})")

    def _parse_ask(
        self, text: str, turn: Turn, ask: AskNow, answers: Mapping[str, Any]
    ) -> Parsed | Invalid:
        assert self.asks is not None
        assert self.multi is not None
        spec = self.asks[ask.name].ask
        if spec.free_text:
            answer = {"text": extract_text(text)}
            value = self.multi.decode_ask(ask.name, answer, turn.observation, answers)
            return Parsed(action=value, reasoning="", fields={})
        answer = extract_json_object(text)
        reasoning = answer.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, str):
            reasoning = str(reasoning)
        if spec.reasoning and not (reasoning and reasoning.strip()):
            return Invalid(raw=text, reason='no "reasoning" given')
        value = self.multi.decode_ask(ask.name, answer, turn.observation, answers)
        policy_fields = (
            {
                field.name: answer[field.name]
                for policy in self.policies
                for field in policy.answer_fields()
                if field.name in answer
            }
            if spec.policies
            else {}
        )
        return Parsed(action=value, reasoning=(reasoning or "").strip(), fields=policy_fields)

    def _context(self, turn: Turn) -> str:
        """The turn's text before its question: shared parts first, for prefix caches."""
        parts = [self.prompts.shared_view(turn.tick)]
        for policy in self.policies:
            text = policy.render(turn.views[policy.name])
            if text:
                parts.append(text)
        if self.persona:
            parts.append(self.persona)
        if self.memory:
            parts.append(
                "What happened to you lately:\n" + "\n".join(f"- {m}" for m in self.memory)
            )
        parts.append(self.prompts.private_view(self.agent_id, turn.observation))
        return "\n\n".join(parts)

    def parse(self, text: str, turn: Turn) -> Parsed | Invalid:
        """The answer's action and fields, or why it cannot be used; any text, never a raise."""
        try:
            return self._parse(text, turn)
        except ValueError as exc:  # the answer format's and the world's reasons, as they say them
            return _invalid(text, str(exc))
        except Exception as exc:  # odd values trip decoders in other ways (a dict for a number)
            return _invalid(text, f"the answer could not be read ({type(exc).__name__}: {exc})")

    def _parse(self, text: str, turn: Turn) -> Parsed | Invalid:
        answer = extract_json_object(text)
        reasoning = answer.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, str):
            reasoning = str(reasoning)
        if self.config.require_reasoning and not (reasoning and reasoning.strip()):
            return Invalid(raw=text, reason='no "reasoning" given')
        action = self.prompts.decode_action(answer, turn.observation)
        policy_fields = {
            field.name: answer[field.name]
            for policy in self.policies
            for field in policy.answer_fields()
            if field.name in answer
        }
        return Parsed(action=action, reasoning=(reasoning or "").strip(), fields=policy_fields)

    def reask(self, request: Request, invalid: Invalid, seed: int) -> Request:
        echo = _clip(invalid.raw, _ECHO_LIMIT)
        messages = (
            *request.messages,
            Message("assistant", echo),
            Message(
                "user",
                f"That answer could not be used: {_clip_middle(invalid.reason, _REASON_LIMIT)}. "
                + (
                    "Reply again with only the JSON object described above."
                    if request.json_answer
                    else "Reply again in plain text, as asked above."
                ),
            ),
        )
        return msgspec.structs.replace(
            request, messages=messages, seed=seed, attempt=request.attempt + 1
        )

    def remember(self, tick: int, outcome: Any) -> None:
        if self.config.memory:
            self.memory.append(self.prompts.describe_outcome(tick, outcome))


def _invalid(text: str, reason: str) -> Invalid:
    return Invalid(raw=text, reason=_clip_middle(reason, _REASON_LIMIT))


def _clip_middle(text: str, limit: int) -> str:
    """A reason ends with what is wrong (``action '…' is neither…``): keep both ends."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "…" + text[-half:]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class LLMAgentPlugin:
    name = "llm"
    config_type = LLMAgentConfig

    def build(
        self,
        config: Any,
        agent_ids: Sequence[AgentId],
        prompts: WorldPrompts,
        policies: Sequence[Policy],
        sampling: Any,
    ) -> dict[AgentId, Any]:
        sampling = Sampling(
            temperature=sampling.temperature,
            max_tokens=sampling.max_tokens,
            params=dict(getattr(sampling, "params", None) or {}),
        )
        policy_fields = [field for policy in policies for field in policy.answer_fields()]
        multi = asks_in_turns(prompts)
        if multi is not None:
            # Each ask says its own answer format; the system text is the rules alone.
            forms = {ask.name: AskForm.of(ask, policy_fields) for ask in multi.asks()}
            return {
                agent_id: LLMAgent(
                    agent_id, config, prompts, policies, prompts.rules(), sampling, None, forms
                )
                for agent_id in agent_ids
            }
        fields = [*prompts.answer_fields(), *policy_fields]
        # One system text for every agent: the longest prefix all requests share.
        system = prompts.rules() + "\n\n" + answer_format(fields)
        schema = answer_schema(fields)
        return {
            agent_id: LLMAgent(agent_id, config, prompts, policies, system, sampling, schema)
            for agent_id in agent_ids
        }


PLUGIN = LLMAgentPlugin()
