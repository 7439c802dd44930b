"""Data that crosses a boundary: requests to a model, its answers, and the run log's records.

Every log record is a ``msgspec.Struct`` tagged by ``kind``, so one decoder, built for the kinds
a run declares (``record_kinds.py``), reads its whole log.
Fields that hold wall-clock time (or a hash over it) are listed in ``TIMING_FIELDS``: they are
the only fields that may differ between two runs with the same seed and the same model answers.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

AgentId = int

# A decision's ``check`` covers its ``latency_s`` and the header's hash its ``started_at``, so
# they differ wherever those do.
TIMING_FIELDS: frozenset[str] = frozenset(
    {"started_at", "finished_at", "latency_s", "wall_s", "check", "header_hash"}
)


class Message(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


class Turn(msgspec.Struct, frozen=True):
    """What one agent is given to decide on: the world's view and each policy's view."""

    tick: int
    agent_id: AgentId
    observation: Any
    views: dict[str, Any]


class AskCall(msgspec.Struct, frozen=True):
    """One call of a multi-ask turn: the ask's name, the earlier asks' decoded answers, and
    whether the policies' answer fields are asked in it."""

    name: str
    answers: dict[str, Any]
    policies: bool = False
    # The answer is prose: the offline backend answers the behaviour's "text" as it is.
    free_text: bool = False


class Request(msgspec.Struct, frozen=True):
    """One call to a model. ``turn`` travels with it for the offline backend, never on the wire."""

    agent_id: AgentId
    tick: int
    messages: tuple[Message, ...]
    seed: int
    attempt: int = 0
    temperature: float = 0.7
    max_tokens: int = 512
    json_answer: bool = True
    # The answer's JSON Schema, for servers that constrain decoding to it (None: any object).
    answer_schema: dict[str, Any] | None = None
    turn: Turn | None = None
    # Parameters for a backend plugin that reads them (e.g. a steering strength); part of the
    # cache key, ignored by transports that do not know them.
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    # In a multi-ask turn, which ask this call is (for the offline backend; a model reads it
    # from the conversation). None: a one-ask turn. Never on the wire, as ``turn``.
    ask: AskCall | None = None


class Completion(msgspec.Struct, frozen=True):
    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    model: str
    requests: int = 1
    cached: bool = False
    # What the provider's price list says this answer cost, when the transport knows it.
    cost_usd: float | None = None


class EndpointReport(msgspec.Struct, frozen=True):
    """What a run learnt about one endpoint: the limit it settled on and what it served."""

    url: str
    limit: int
    most_in_flight: int
    answers: int
    adjustments: int


class Parsed(msgspec.Struct, frozen=True):
    """A valid answer: the world's action, the reasoning, and the fields policies read."""

    action: Any
    reasoning: str
    fields: dict[str, Any]


class Invalid(msgspec.Struct, frozen=True):
    """An answer that could not be turned into an action, kept with its raw text and why."""

    raw: str
    reason: str


# ---- the run log -------------------------------------------------------------------------


class LogRecord(msgspec.Struct, tag_field="kind", omit_defaults=False):
    pass


class RunHeader(LogRecord, tag="run"):
    run_id: str
    seed: int
    config: dict[str, Any]
    backend: str
    model: str
    versions: dict[str, str]
    world: str
    world_info: dict[str, Any]
    scheduler: str
    started_at: str
    format: int = 1
    # Each endpoint's answer format (json_schema, ...) and how its probe went.
    endpoints: dict[str, Any] = msgspec.field(default_factory=dict)
    # Format 3 on: each record kind of the run's world and policies → who declares it
    # ("world", "policies.<name>"), so a reader finds its type by the plugin that name leads to.
    records: dict[str, str] = msgspec.field(default_factory=dict)
    # Format 2 on: blake2b of this record encoded with ``header_hash`` None (``integrity.py``),
    # so an edited config is refused by resume and replay. None in older logs.
    header_hash: str | None = None


class InvalidAttempt(msgspec.Struct, frozen=True, omit_defaults=True):
    raw: str
    reason: str
    # As ``Decision.raw_chars`` and ``raw_sha256``; left out of the line when ``raw`` is whole.
    raw_chars: int | None = None
    raw_sha256: str | None = None


class Call(msgspec.Struct, frozen=True, omit_defaults=True):
    """One ask of a multi-ask turn as it went: its last answer, and what getting it took."""

    ask: str
    valid: bool
    raw: str
    attempts: int
    requests: int
    tokens_in: int
    tokens_out: int
    latency_s: float
    cached: bool = False
    # The ask's decoded value when valid (what later asks and the world were given).
    answer: Any = None
    reasoning: str = ""
    invalid_reason: str | None = None
    invalid_attempts: list[InvalidAttempt] = msgspec.field(default_factory=list)
    raw_chars: int | None = None
    raw_sha256: str | None = None


class Decision(LogRecord, tag="decision"):
    tick: int
    agent: AgentId
    prompt_hash: str
    raw: str
    valid: bool
    action: Any
    reasoning: str
    invalid_reason: str | None
    error: str | None
    info: dict[str, Any]
    attempts: int
    requests: int
    invalid_attempts: list[InvalidAttempt]
    tokens_in: int
    tokens_out: int
    cached: bool
    latency_s: float
    cost_usd: float = 0.0
    # The answer's fields that policies read, so replay needs no parsing.
    fields: dict[str, Any] = msgspec.field(default_factory=dict)
    # Set only when ``raw`` holds just the head of a long answer: the whole answer's length in
    # characters and the first 16 hex digits of the SHA-256 of its UTF-8 (both None when ``raw``
    # is the whole answer, and in logs written before these fields).
    raw_chars: int | None = None
    raw_sha256: str | None = None
    # A multi-ask turn's calls in order (``raw``, ``attempts``, tokens and latency above are
    # then the last call's and the turn's totals); None for a one-ask turn, which is the
    # decision itself. A turn whose ask stayed invalid lists the calls up to that one.
    calls: list[Call] | None = None
    # The request parameters the turn was asked with (``inference.params``: a steering
    # strength, say), so a decision says what produced it; {} in older logs.
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    # CRC-32 of the record's line with this field empty, set by the log writer (``integrity.py``)
    # so replay can name an edited decision's line. KEEP IT THE LAST FIELD: the writer fills it
    # in at the end of the encoded line.
    check: str = ""


class TickEnd(LogRecord, tag="tick"):
    tick: int
    decisions: int
    valid: int
    invalid: int
    errors: int
    metrics: dict[str, Any]
    policies: dict[str, Any]
    digest: str
    wall_s: float


class Resumed(LogRecord, tag="resume"):
    """A run picked up again after it stopped: from which tick, reusing how many decisions.

    With ``rollback`` (a resume that asks errored decisions again), every record logged before
    this one for a tick ≥ ``tick`` is superseded: the decisions it keeps are logged again right
    after it, and the ticks from ``tick`` on are run again. ``reasked`` counts the errored
    decisions asked again.
    """

    tick: int
    reused: int
    dropped_torn_line: bool
    started_at: str
    rollback: bool = False
    reasked: int = 0


class RunEnd(LogRecord, tag="end"):
    ticks: int
    decisions: int
    invalid: int
    errors: int
    status: Literal["completed", "stopped", "failed"]
    reason: str | None
    tokens_in: int
    tokens_out: int
    finished_at: str
    wall_s: float
    cost_usd: float = 0.0


# The engine's own kinds. Worlds and policies add theirs (``record_kinds.py``): a run's log is
# read with a decoder built for the kinds its header declares.
AnyRecord = RunHeader | Decision | TickEnd | Resumed | RunEnd
