"""The LLM agent: composes the prompt from the world's and the policies' parts, reads the answer.

Prompt order puts what is shared first (rules, then this tick's shared view and policy views,
then the persona, memory and the agent's own options) so prefix-caching servers reuse the most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from agora.engine.answer_json import extract_json_object
from agora.engine.protocols import AnswerField, Policy, WorldPrompts
from agora.engine.records import AgentId, Invalid, Message, Parsed, Request, Turn

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
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self.prompts = prompts
        self.policies = policies
        self.system = system
        self.sampling = sampling
        # One object shared by every agent: batches group requests by its identity.
        self.schema = schema
        template = config.persona if config.persona is not None else prompts.persona()
        self.persona = template.replace("{agent}", str(agent_id))
        self.memory: deque[str] = deque(maxlen=config.memory)

    def request(self, turn: Turn, seed: int) -> Request:
        parts = [self.prompts.shared_view(turn.tick)]
        for policy in self.policies:
            text = policy.render(turn.views[policy.name])
            if text:
                parts.append(text)
        parts.append(self.persona)
        if self.memory:
            parts.append(
                "What happened to you lately:\n" + "\n".join(f"- {m}" for m in self.memory)
            )
        parts.append(self.prompts.private_view(self.agent_id, turn.observation))
        messages = (
            Message("system", self.system),
            Message("user", "\n\n".join(parts)),
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
        )

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
                "Reply again with only the JSON object described above.",
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
        fields = [*prompts.answer_fields()]
        for policy in policies:
            fields.extend(policy.answer_fields())
        # One system text for every agent: the longest prefix all requests share.
        system = prompts.rules() + "\n\n" + answer_format(fields)
        sampling = Sampling(temperature=sampling.temperature, max_tokens=sampling.max_tokens)
        schema = answer_schema(fields)
        return {
            agent_id: LLMAgent(agent_id, config, prompts, policies, system, sampling, schema)
            for agent_id in agent_ids
        }


PLUGIN = LLMAgentPlugin()
