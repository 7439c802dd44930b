"""One agent's turn: ask, re-ask on an invalid answer, record the decision as it arrives.

Both schedulers use this, so a decision is asked, parsed and logged the same way whether the
world runs in lockstep or lets agents run ahead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import structlog

from agora.engine.answer_json import LONE_SURROGATE, has_lone_surrogate, replace_lone_surrogates
from agora.engine.inference.errors import InferenceError
from agora.engine.log import UNENCODABLE, LogEncodeError, RunLogWriter
from agora.engine.protocols import Agent, LLMClient, Policy, World
from agora.engine.records import (
    AgentId,
    Completion,
    Decision,
    Invalid,
    InvalidAttempt,
    LogRecord,
    Message,
    Parsed,
    Post,
    Turn,
)
from agora.engine.seeding import Seeds

_log = structlog.get_logger("agora.turns")

# What the log keeps of an answer: its head, with the whole one's length and a hash. A decision
# answer is a few hundred characters; runaway ones (megabytes of repetition) made a 1 GB log.
RAW_HEAD_CHARS = 4096
# A reason may quote what it could not read; a quote of a 64 KiB field helps no one.
REASON_CHARS = 1000
# Encodes a valid answer's parts once before it counts, to find what the log could not hold.
_check = msgspec.json.Encoder()


TurnStatus = Literal["valid", "invalid", "error"]


@dataclass(slots=True)
class TurnResult:
    agent_id: AgentId
    action: Any  # None when the agent did not produce a valid action
    status: TurnStatus


@dataclass(frozen=True, slots=True)
class Pricing:
    """USD per million tokens; ``None`` leaves the price to the transport, if it knows one."""

    per_mtok_in: float | None = None
    per_mtok_out: float | None = None

    def cost(self, completion: Completion) -> float:
        if completion.cached:
            return 0.0  # no request was made
        if self.per_mtok_in is None and self.per_mtok_out is None:
            return completion.cost_usd or 0.0
        return (
            completion.tokens_in * (self.per_mtok_in or 0.0)
            + completion.tokens_out * (self.per_mtok_out or 0.0)
        ) / 1e6


@dataclass(slots=True)
class RunTotals:
    decisions: int = 0
    valid: int = 0
    invalid: int = 0
    errors: int = 0
    requests: int = 0
    answers: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    # Tokens of answers that were requested, not read from the cache: what a provider bills.
    billed_tokens: int = 0
    cost_usd: float = 0.0
    # Requests beyond the first for an answer or a failure: provider faults retried.
    retries: int = 0
    in_flight: int = 0

    def count(self, decision: Decision, usage: TurnUsage) -> TurnStatus:
        self.decisions += 1
        self.requests += decision.requests
        self.answers += usage.answers
        self.tokens_in += decision.tokens_in
        self.tokens_out += decision.tokens_out
        self.billed_tokens += usage.billed_tokens
        self.retries += usage.retries
        self.cost_usd += decision.cost_usd
        if decision.error is not None:
            self.errors += 1
            return "error"
        if decision.valid:
            self.valid += 1
            return "valid"
        self.invalid += 1
        return "invalid"


@dataclass(slots=True)
class TickTally:
    decisions: int = 0
    valid: int = 0
    invalid: int = 0
    errors: int = 0

    def add(self, status: str) -> None:
        self.decisions += 1
        if status == "valid":
            self.valid += 1
        elif status == "invalid":
            self.invalid += 1
        else:
            self.errors += 1


def prompt_hash(messages: Sequence[Message]) -> str:
    text = "".join(f"{m.role}\x00{m.content}\x01" for m in messages)
    # SHA-1 for speed (twice blake2b's here, and prompts of big worlds run to tens of KB per
    # decision); this names a prompt, it protects nothing.
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass
class TurnRunner:
    world: World
    agents: Mapping[AgentId, Agent]
    policies: Sequence[Policy]
    client: LLMClient
    log: RunLogWriter
    seeds: Seeds
    max_reasks: int
    pricing: Pricing = field(default_factory=Pricing)
    clock: Callable[[], float] = time.perf_counter
    totals: RunTotals = field(default_factory=RunTotals)
    # Posts a stopped run logged for ticks it did not close: (tick, post id), not logged again.
    posts_logged: frozenset[tuple[int, int]] = frozenset()
    # Called at every tick end to make the log durable (a background fsync in a run).
    tick_sync: Callable[[], None] | None = None

    def logged_before(self, record: LogRecord) -> bool:
        return isinstance(record, Post) and (record.tick, record.post_id) in self.posts_logged

    async def take(self, tick: int, agent_id: AgentId) -> TurnResult:
        """Run one agent's turn; whatever goes wrong is recorded, never raised to the tick."""
        usage = TurnUsage()
        try:
            decision, records = await self._decide(tick, agent_id, usage)
        except Exception as exc:  # one agent's fault must not take the tick down
            _log.exception("turn failed", tick=tick, agent=agent_id)
            error = f"internal error: {type(exc).__name__}: {exc}"
            # What was already paid for stays on the record.
            decision, records = _failed_decision(tick, agent_id, error, usage), []
        # Written outside the guard: a decision is logged exactly once, and a failing log
        # (a full disk) stops the run instead of being recorded as an agent's fault.
        # One write for the decision and what it caused (its likes): streamed as it happens,
        # and a kill leaves both or neither.
        try:
            self.log.append_many([decision, *records])
        except LogEncodeError as exc:
            # Answers are checked before they count, so this is a world's or a policy's record
            # (an annotation JSON cannot hold): the decision is kept as an error without it,
            # and the agent does not act on what the log could not record.
            _log.error("decision could not be logged", tick=tick, agent=agent_id, error=str(exc))
            decision, records = _unlogged(decision, str(exc)), []
            self.log.append_many([decision])
        status = self.totals.count(decision, usage)
        return TurnResult(agent_id, decision.action, status)

    async def _decide(
        self, tick: int, agent_id: AgentId, usage: TurnUsage
    ) -> tuple[Decision, list[LogRecord]]:
        agent = self.agents[agent_id]
        observation = self.world.observe(agent_id, tick)
        views = {policy.name: policy.view(agent_id, tick) for policy in self.policies}
        turn = Turn(tick=tick, agent_id=agent_id, observation=observation, views=views)
        request = agent.request(turn, self.seeds.integer("sampling", agent_id, tick, 0))
        first_hash = prompt_hash(request.messages)

        invalid_attempts: list[InvalidAttempt] = []
        parsed: Parsed | None = None
        last: Invalid | None = None
        error: str | None = None
        raw = ""
        all_cached = True
        latency = 0.0
        for attempt in range(self.max_reasks + 1):
            started = self.clock()
            self.totals.in_flight += 1
            try:
                completion = await self.client.complete(request)
            except InferenceError as exc:
                latency += self.clock() - started
                usage.requests += exc.requests
                usage.retries += max(0, exc.requests - 1)
                all_cached = False
                error = exc.reason
                break
            finally:
                self.totals.in_flight -= 1
            latency += self.clock() - started
            usage.requests += completion.requests
            usage.tokens_in += completion.tokens_in
            usage.tokens_out += completion.tokens_out
            usage.cost_usd += self.pricing.cost(completion)
            if not completion.cached:
                usage.billed_tokens += completion.tokens_in + completion.tokens_out
                usage.retries += max(0, completion.requests - 1)
            usage.answers += 1
            all_cached = all_cached and completion.cached
            raw = completion.text
            if has_lone_surrogate(raw):
                # No log line and no re-ask can carry it: kept with U+FFFD in its place.
                raw = replace_lone_surrogates(raw)
                result: Parsed | Invalid = Invalid(raw=raw, reason=LONE_SURROGATE)
            else:
                result = _read(agent, raw, turn)
            usage.raw = raw
            if isinstance(result, Parsed):
                parsed = result
                break
            if last is not None:
                invalid_attempts.append(_attempt(last))
            last = result
            if attempt < self.max_reasks:
                seed = self.seeds.integer("sampling", agent_id, tick, attempt + 1)
                request = agent.reask(request, result, seed)

        records: list[LogRecord] = []
        info: dict[str, Any] = {}
        if parsed is not None:
            if last is not None:
                invalid_attempts.append(_attempt(last))
            info = self.world.annotate(agent_id, observation, parsed.action)
            notes: list[str] = []
            for policy in self.policies:
                policy_records, policy_notes = policy.absorb(
                    tick, agent_id, parsed.fields, views[policy.name]
                )
                records.extend(policy_records)
                notes.extend(policy_notes)
            if notes:
                info["notes"] = notes
        logged_raw, raw_chars, raw_sha256 = _head(raw)
        decision = Decision(
            tick=tick,
            agent=agent_id,
            prompt_hash=first_hash,
            raw=logged_raw,
            valid=parsed is not None,
            action=parsed.action if parsed is not None else None,
            reasoning=parsed.reasoning if parsed is not None else "",
            invalid_reason=_text(last.reason) if parsed is None and last is not None else None,
            error=_text(error) if error is not None else None,
            info=info,
            attempts=len(invalid_attempts) + (1 if (parsed or last) else 0),
            requests=usage.requests,
            invalid_attempts=invalid_attempts,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cached=all_cached and usage.answers > 0,
            latency_s=round(latency, 6),
            cost_usd=usage.cost_usd,
            fields=parsed.fields if parsed is not None else {},
            raw_chars=raw_chars,
            raw_sha256=raw_sha256,
        )
        return decision, records


def _read(agent: Agent, text: str, turn: Turn) -> Parsed | Invalid:
    """The agent's reading of an answer: whatever the text, a result, never an exception."""
    try:
        result = agent.parse(text, turn)
    except Exception as exc:  # odd text tripping an agent: the answer is invalid, not the turn
        _log.warning("answer could not be parsed", agent=turn.agent_id, exc_info=True)
        return Invalid(raw=text, reason=f"the answer could not be read ({_named(exc)})")
    if isinstance(result, Parsed):
        # Checked before any policy acts on it: an answer the log cannot hold is re-asked.
        try:
            _check.encode((result.action, result.reasoning, result.fields))
        except UNENCODABLE as exc:
            return Invalid(raw=text, reason=f"the answer cannot be logged ({_named(exc)})")
    return result


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _text(text: str, limit: int = REASON_CHARS) -> str:
    """``text`` as the log can hold it (no lone surrogate), cut to about ``limit`` characters
    in the middle: a reason ends with what is wrong (``action '…' is neither…``)."""
    text = replace_lone_surrogates(text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "…" + text[-half:]


def _head(raw: str) -> tuple[str, int | None, str | None]:
    """What the log keeps of an answer: the whole when short, else its head, with the whole
    one's length and the first 16 hex digits of its SHA-256, to tell answers apart."""
    raw = replace_lone_surrogates(raw)
    if len(raw) <= RAW_HEAD_CHARS:
        return raw, None, None
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    return raw[:RAW_HEAD_CHARS], len(raw), digest


def _attempt(invalid: Invalid) -> InvalidAttempt:
    raw, raw_chars, raw_sha256 = _head(invalid.raw)
    return InvalidAttempt(
        raw=raw, reason=_text(invalid.reason), raw_chars=raw_chars, raw_sha256=raw_sha256
    )


@dataclass(slots=True)
class TurnUsage:
    """What one turn has cost so far, kept as it goes so a crash cannot lose it."""

    requests: int = 0
    answers: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    billed_tokens: int = 0
    cost_usd: float = 0.0
    # The last answer's text (lone surrogates replaced), so a fault after it cannot lose it.
    raw: str = ""


def _failed_decision(tick: int, agent_id: AgentId, error: str, usage: TurnUsage) -> Decision:
    raw, raw_chars, raw_sha256 = _head(usage.raw)
    return Decision(
        tick=tick,
        agent=agent_id,
        prompt_hash="",
        raw=raw,
        valid=False,
        action=None,
        reasoning="",
        invalid_reason=None,
        error=_text(error),
        info={},
        attempts=usage.answers,
        requests=usage.requests,
        invalid_attempts=[],
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        cached=False,
        latency_s=0.0,
        cost_usd=usage.cost_usd,
        raw_chars=raw_chars,
        raw_sha256=raw_sha256,
    )


def _unlogged(decision: Decision, error: str) -> Decision:
    """``decision`` as an error, without the action, fields and annotations it could not log."""
    return msgspec.structs.replace(
        decision,
        valid=False,
        action=None,
        reasoning="",
        invalid_reason=None,
        error=_text(f"internal error: {error}"),
        info={},
        fields={},
    )
