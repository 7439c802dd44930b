"""The LLM agent: composes the prompt from the world's and the policies' parts, reads the answer.

Prompt order puts what is shared first (rules, then this tick's shared view and policy views,
then the persona, memory and the agent's own options) so prefix-caching servers reuse the most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from engine.answer_json import AnswerFormatError, extract_json_object
from engine.protocols import AnswerField, Policy, WorldPrompts
from engine.records import AgentId, Invalid, Message, Parsed, Request, Turn

_ECHO_LIMIT = 2000


class LLMAgentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str = "llm"
    # "{agent}" is replaced by the agent's number.
    persona: str = "You are resident #{agent}."
    # How many of its own past outcomes an agent is reminded of.
    memory: Annotated[int, msgspec.Meta(ge=0)] = 3
    # Reasoning is what the analyses code; an answer without it is re-asked.
    require_reasoning: bool = True


class Sampling(msgspec.Struct, frozen=True):
    temperature: float = 0.7
    max_tokens: int = 512


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
    ) -> None:
        self.agent_id = agent_id
        self.config = config
        self.prompts = prompts
        self.policies = policies
        self.system = system
        self.sampling = sampling
        self.persona = config.persona.replace("{agent}", str(agent_id))
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
            turn=turn,
        )

    def parse(self, text: str, turn: Turn) -> Parsed | Invalid:
        try:
            answer = extract_json_object(text)
        except AnswerFormatError as exc:
            return Invalid(raw=text, reason=str(exc))
        reasoning = answer.get("reasoning")
        if reasoning is not None and not isinstance(reasoning, str):
            reasoning = str(reasoning)
        if self.config.require_reasoning and not (reasoning and reasoning.strip()):
            return Invalid(raw=text, reason='no "reasoning" given')
        try:
            action = self.prompts.decode_action(answer, turn.observation)
        except ValueError as exc:
            return Invalid(raw=text, reason=str(exc))
        policy_fields = {
            field.name: answer[field.name]
            for policy in self.policies
            for field in policy.answer_fields()
            if field.name in answer
        }
        return Parsed(action=action, reasoning=(reasoning or "").strip(), fields=policy_fields)

    def reask(self, request: Request, invalid: Invalid, seed: int) -> Request:
        echo = invalid.raw if len(invalid.raw) <= _ECHO_LIMIT else invalid.raw[:_ECHO_LIMIT] + "…"
        messages = (
            *request.messages,
            Message("assistant", echo),
            Message(
                "user",
                f"That answer could not be used: {invalid.reason}. "
                "Reply again with only the JSON object described above.",
            ),
        )
        return msgspec.structs.replace(
            request, messages=messages, seed=seed, attempt=request.attempt + 1
        )

    def remember(self, tick: int, outcome: Any) -> None:
        if self.config.memory:
            self.memory.append(f"round {tick + 1}: {self.prompts.describe_outcome(outcome)}")


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
        return {
            agent_id: LLMAgent(agent_id, config, prompts, policies, system, sampling)
            for agent_id in agent_ids
        }


PLUGIN = LLMAgentPlugin()
