"""One agent's turn: ask, re-ask on an invalid answer, record the decision as it arrives.

Both schedulers use this, so a decision is asked, parsed and logged the same way whether the
world runs in lockstep or lets agents run ahead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgspec
import structlog

from agora.engine.answer_json import LONE_SURROGATE, has_lone_surrogate, replace_lone_surrogates
from agora.engine.inference.errors import InferenceError
from agora.engine.log import UNENCODABLE, LogEncodeError, RunLogWriter
from agora.engine.protocols import (
    Agent,
    Ask,
    AskNow,
    AsksInTurns,
    LLMClient,
    MultiAskAgent,
    Policy,
    Remembers,
    World,
)
from agora.engine.record_kinds import LoggedRecords
from agora.engine.records import (
    AgentId,
    Call,
    Completion,
    Decision,
    Invalid,
    InvalidAttempt,
    LogRecord,
    Message,
    Parsed,
    Request,
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
    # ``inference.params``: what a request that carries none is asked with (``ParamsClient``),
    # so a decision records them whichever agent made the request.
    params: Mapping[str, Any] = field(default_factory=dict)
    clock: Callable[[], float] = time.perf_counter
    totals: RunTotals = field(default_factory=RunTotals)
    # Records a stopped run logged for ticks it did not close: made again, not logged again.
    logged: LoggedRecords = field(default_factory=LoggedRecords)
    # Called at every tick end to make the log durable (a background fsync in a run).
    tick_sync: Callable[[], None] | None = None
    # The world's asks when its turns are several (``AsksInTurns``); None: one ask a turn.
    asks: AsksInTurns | None = None
    # The offline behaviour when it keeps state of its own: told every outcome, as agents are.
    offline_memory: Remembers | None = None
    _specs: dict[str, Ask] | None = field(default=None, init=False)

    def remember(self, tick: int, outcomes: Mapping[AgentId, Any]) -> None:
        """What each acting agent's action led to, for its memory (and the offline state)."""
        agents, offline = self.agents, self.offline_memory
        for agent_id, outcome in outcomes.items():
            agents[agent_id].remember(tick, outcome)
            if offline is not None:
                offline.remember(agent_id, tick, outcome)

    def logged_before(self, record: LogRecord) -> bool:
        return self.logged.take(record)

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
        if self.asks is not None:
            # Checked for every agent before the run (ask_checks.py): a cast, not a test.
            return await self._decide_asks(turn, cast(MultiAskAgent, agent), self.asks, usage)
        request = agent.request(turn, self.seeds.integer("sampling", agent_id, tick, 0))
        first_hash = prompt_hash(request.messages)
        usage.params = dict(request.params or self.params)

        def read(text: str) -> Parsed | Invalid:
            return _read(agent.parse, text, turn)

        def reask(request: Request, invalid: Invalid, attempt: int) -> Request:
            return agent.reask(
                request, invalid, self.seeds.integer("sampling", agent_id, tick, attempt)
            )

        call = await self._call(request, read, reask, self.max_reasks, usage)
        parsed, last = call.parsed, call.last
        records, info = self._absorb(turn, parsed)
        logged_raw, raw_chars, raw_sha256 = _head(call.raw)
        decision = Decision(
            tick=tick,
            agent=agent_id,
            prompt_hash=first_hash,
            raw=logged_raw,
            valid=parsed is not None,
            action=parsed.action if parsed is not None else None,
            reasoning=parsed.reasoning if parsed is not None else "",
            invalid_reason=_text(last.reason) if parsed is None and last is not None else None,
            error=_text(call.error) if call.error is not None else None,
            info=info,
            attempts=call.attempts,
            requests=usage.requests,
            invalid_attempts=call.invalid_attempts,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cached=call.cached and usage.answers > 0,
            latency_s=round(call.latency, 6),
            cost_usd=usage.cost_usd,
            fields=parsed.fields if parsed is not None else {},
            raw_chars=raw_chars,
            raw_sha256=raw_sha256,
            params=usage.params,
        )
        return decision, records

    async def _call(
        self,
        request: Request,
        read: Callable[[str], Parsed | Invalid],
        reask: Callable[[Request, Invalid, int], Request],
        max_reasks: int,
        usage: TurnUsage,
    ) -> _CallResult:
        """Ask until an answer reads or the re-asks are spent; a provider fault ends it."""
        call = _CallResult()
        for attempt in range(max_reasks + 1):
            started = self.clock()
            self.totals.in_flight += 1
            try:
                completion = await self.client.complete(request)
            except InferenceError as exc:
                call.latency += self.clock() - started
                usage.requests += exc.requests
                usage.retries += max(0, exc.requests - 1)
                call.cached = False
                call.error = exc.reason
                break
            finally:
                self.totals.in_flight -= 1
            call.latency += self.clock() - started
            usage.requests += completion.requests
            usage.tokens_in += completion.tokens_in
            usage.tokens_out += completion.tokens_out
            usage.cost_usd += self.pricing.cost(completion)
            if not completion.cached:
                usage.billed_tokens += completion.tokens_in + completion.tokens_out
                usage.retries += max(0, completion.requests - 1)
            usage.answers += 1
            call.answers += 1
            call.cached = call.cached and completion.cached
            raw = completion.text
            if has_lone_surrogate(raw):
                # No log line and no re-ask can carry it: kept with U+FFFD in its place.
                raw = replace_lone_surrogates(raw)
                result: Parsed | Invalid = Invalid(raw=raw, reason=LONE_SURROGATE)
            else:
                result = read(raw)
            call.raw = usage.raw = raw
            if isinstance(result, Parsed):
                call.parsed = result
                break
            if call.last is not None:
                call.invalid_attempts.append(_attempt(call.last))
            call.last = result
            if attempt < max_reasks:
                request = reask(request, result, attempt + 1)
        if call.parsed is not None and call.last is not None:
            call.invalid_attempts.append(_attempt(call.last))
        return call

    def _absorb(self, turn: Turn, parsed: Parsed | None) -> tuple[list[LogRecord], dict[str, Any]]:
        """A valid turn's annotations, and what the policies make of its fields."""
        records: list[LogRecord] = []
        info: dict[str, Any] = {}
        if parsed is None:
            return records, info
        info = self.world.annotate(turn.agent_id, turn.observation, parsed.action)
        notes: list[str] = []
        for policy in self.policies:
            policy_records, policy_notes = policy.absorb(
                turn.tick, turn.agent_id, parsed.fields, turn.views[policy.name]
            )
            records.extend(policy_records)
            notes.extend(policy_notes)
        if notes:
            info["notes"] = notes
        return records, info

    async def _decide_asks(
        self, turn: Turn, agent: MultiAskAgent, asks: AsksInTurns, usage: TurnUsage
    ) -> tuple[Decision, list[LogRecord]]:
        """A turn of several asks in one conversation, each with its own budget; the first
        that stays invalid (or fails) ends the turn, and the decision keeps every call."""
        tick, agent_id = turn.tick, turn.agent_id
        specs = self._ask_specs(asks)
        answers: dict[str, Any] = {}
        earlier: list[tuple[AskNow, str]] = []
        calls: list[Call] = []
        fields: dict[str, Any] = {}
        reasonings: list[str] = []
        first_hash = ""
        failed: _CallResult | None = None
        failed_ask = ""
        latency = 0.0
        cached = True
        while (now := asks.next_ask(turn.observation, answers)) is not None:
            index = len(calls)
            if index >= MAX_ASKS_PER_TURN:
                raise RuntimeError(f"the world's turn asked more than {MAX_ASKS_PER_TURN} times")
            spec = specs.get(now.name)
            if spec is None:
                raise RuntimeError(f"the world asked {now.name!r}, which its asks() do not declare")
            seed = self.seeds.integer("sampling-ask", agent_id, tick, index, 0)
            request = agent.ask_request(turn, now, earlier, answers, seed)
            if index == 0:
                first_hash = prompt_hash(request.messages)
                usage.params = dict(request.params or self.params)
            before = (usage.requests, usage.tokens_in, usage.tokens_out)
            so_far = dict(answers)

            def read(
                text: str, now: AskNow = now, so_far: dict[str, Any] = so_far
            ) -> Parsed | Invalid:
                return _read(lambda t, turn: agent.parse_ask(t, turn, now, so_far), text, turn)

            def reask(
                request: Request, invalid: Invalid, attempt: int, index: int = index
            ) -> Request:
                seed = self.seeds.integer("sampling-ask", agent_id, tick, index, attempt)
                return agent.reask(request, invalid, seed)

            budget = self.max_reasks if spec.max_reasks is None else spec.max_reasks
            call = await self._call(request, read, reask, budget, usage)
            latency += call.latency
            cached = cached and call.cached
            calls.append(_call_record(now.name, call, usage, before))
            if call.parsed is None:
                failed, failed_ask = call, now.name
                break
            answers[now.name] = call.parsed.action
            earlier.append((now, call.raw))
            fields.update(call.parsed.fields)
            if call.parsed.reasoning:
                reasonings.append(call.parsed.reasoning)

        parsed: Parsed | None = None
        invalid_reason: str | None = None
        if failed is None:
            try:
                action = asks.decode_turn(turn.observation, answers)
                parsed = Parsed(action=action, reasoning="\n".join(reasonings), fields=fields)
                _check.encode(action)
            except ValueError as exc:
                invalid_reason = f"the answers make no action: {exc}"
                parsed = None
            except UNENCODABLE as exc:
                invalid_reason = f"the action cannot be logged ({_named(exc)})"
                parsed = None
        elif failed.error is None and failed.last is not None:
            invalid_reason = f"ask {failed_ask!r}: {failed.last.reason}"
        records, info = self._absorb(turn, parsed)
        last_raw = calls[-1].raw if calls else ""
        decision = Decision(
            tick=tick,
            agent=agent_id,
            prompt_hash=first_hash,
            raw=last_raw,
            valid=parsed is not None,
            action=parsed.action if parsed is not None else None,
            reasoning=parsed.reasoning if parsed is not None else "",
            invalid_reason=_text(invalid_reason) if invalid_reason is not None else None,
            error=_text(failed.error) if failed is not None and failed.error else None,
            info=info,
            attempts=sum(c.attempts for c in calls),
            requests=usage.requests,
            invalid_attempts=[a for c in calls for a in c.invalid_attempts],
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cached=cached and usage.answers > 0,
            latency_s=round(latency, 6),
            cost_usd=usage.cost_usd,
            fields=parsed.fields if parsed is not None else {},
            raw_chars=calls[-1].raw_chars if calls else None,
            raw_sha256=calls[-1].raw_sha256 if calls else None,
            calls=calls,
            params=usage.params,
        )
        return decision, records

    def _ask_specs(self, asks: AsksInTurns) -> dict[str, Ask]:
        if self._specs is None:
            self._specs = {ask.name: ask for ask in asks.asks()}
        return self._specs


# A world whose next_ask never says "done" must not hang a run: far more than any
# questionnaire, few enough to stop a loop quickly.
MAX_ASKS_PER_TURN = 100


@dataclass(slots=True)
class _CallResult:
    """How one ask went: the answer that read, or the last that did not, or the fault."""

    parsed: Parsed | None = None
    last: Invalid | None = None
    error: str | None = None
    raw: str = ""
    answers: int = 0
    cached: bool = True
    latency: float = 0.0
    invalid_attempts: list[InvalidAttempt] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return len(self.invalid_attempts) + (1 if (self.parsed or self.last) else 0)


def _call_record(
    ask: str, call: _CallResult, usage: TurnUsage, before: tuple[int, int, int]
) -> Call:
    raw, raw_chars, raw_sha256 = _head(call.raw)
    requests, tokens_in, tokens_out = before
    return Call(
        ask=ask,
        valid=call.parsed is not None,
        raw=raw,
        attempts=call.attempts,
        requests=usage.requests - requests,
        tokens_in=usage.tokens_in - tokens_in,
        tokens_out=usage.tokens_out - tokens_out,
        latency_s=round(call.latency, 6),
        cached=call.cached and call.answers > 0,
        answer=call.parsed.action if call.parsed is not None else None,
        reasoning=call.parsed.reasoning if call.parsed is not None else "",
        invalid_reason=(
            _text(call.last.reason) if call.parsed is None and call.last is not None else None
        ),
        invalid_attempts=call.invalid_attempts,
        raw_chars=raw_chars,
        raw_sha256=raw_sha256,
    )


def _read(
    parse: Callable[[str, Turn], Parsed | Invalid], text: str, turn: Turn
) -> Parsed | Invalid:
    """The agent's reading of an answer: whatever the text, a result, never an exception."""
    try:
        result = parse(text, turn)
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
    # The parameters the turn's requests carry (the decision records them).
    params: dict[str, Any] = field(default_factory=dict)


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
        params=usage.params,
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
