"""Constrained answers: ask a server for the answer's JSON Schema, or the best it can do.

Servers differ in what ``response_format`` they take: vLLM, SGLang and OpenAI take
``json_schema`` (constrained decoding: the answer cannot leave the schema); llama-cpp-python
takes ``json_object`` with a ``schema`` beside it (a grammar made from the schema) and answers
HTTP 500 to ``json_schema``; older servers take a bare ``json_object``; some take none. Each
endpoint is probed once, before the run's header is written, with a tiny request in each form
from the most to the least constrained; the first it answers is used for the whole run and
written in the header, with what it refused and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import msgspec

FormatMode = Literal["json_schema", "json_object+schema", "json_object", "none"]
FORMAT_CHAIN: tuple[FormatMode, ...] = ("json_schema", "json_object+schema", "json_object", "none")
Requested = Literal["json_schema", "json_object", "none"]


def chain_from(requested: Requested) -> tuple[FormatMode, ...]:
    """The forms to try, most constrained first, starting from what the config asks for."""
    start = "json_schema" if requested == "json_schema" else requested
    return FORMAT_CHAIN[FORMAT_CHAIN.index(start) :]


def wire_format(
    mode: FormatMode, schema: Mapping[str, Any] | None, json_answer: bool = True
) -> dict[str, Any] | None:
    """The ``response_format`` body for one request under an endpoint's mode."""
    if not json_answer or mode == "none":
        return None
    if schema is None or mode == "json_object":
        return {"type": "json_object"}
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    return {"type": "json_object", "schema": schema}


PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
PROBE_PROMPT = 'Answer with the JSON object {"ok": true} and nothing else.'


class ProbeResult(msgspec.Struct, frozen=True):
    """What one endpoint was found to take, for the run header."""

    response_format: FormatMode
    requests: int
    refused: dict[str, str] = msgspec.field(default_factory=dict)
    # Set when the server did not answer the probes (down or overloaded at the start): the
    # run uses the most constrained form asked for, and its requests fail or succeed alone.
    unprobed: str | None = None


# Sends one probe request in a form; returns the HTTP status (None: no HTTP answer at all)
# and, when it is not 200, why.
ProbeSend = Callable[[dict[str, Any] | None], Awaitable[tuple[int | None, str]]]

# What a server says to a form it does not take: a validation error (400, 422), no such
# feature (404, 405, 415, 501), or, as llama-cpp-python says it, 500. Anything else (429, 503
# while a model loads, a timeout) says nothing about the form: the same form is asked again.
_REFUSALS = frozenset({400, 404, 405, 415, 422, 500, 501})
_TRIES = 3


async def probe_endpoint(
    send: ProbeSend,
    requested: Requested,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> ProbeResult:
    refused: dict[str, str] = {}
    chain = chain_from(requested)
    requests = 0
    for mode in chain:
        for attempt in range(_TRIES):
            status, reason = await send(wire_format(mode, PROBE_SCHEMA))
            requests += 1
            if status == 200:
                return ProbeResult(response_format=mode, requests=requests, refused=refused)
            if status in _REFUSALS:
                refused[mode] = reason
                break
            if attempt < _TRIES - 1:
                await sleep(2.0**attempt)
        else:
            # The server is not answering probes (down, loading, overloaded): the run asks in
            # the most constrained form wanted, and this result is not kept for later runs.
            return ProbeResult(
                response_format=chain[0],
                requests=requests,
                refused=refused,
                unprobed=f"no form could be probed: {reason}",
            )
    return ProbeResult(response_format=chain[-1], requests=requests, refused=refused)


_MODES: frozenset[str] = frozenset(FORMAT_CHAIN)


class EndpointFormats:
    """Each endpoint's answer format: what the config asks for until a probe says otherwise."""

    def __init__(self, names: list[str], requested: Requested) -> None:
        self.requested = requested
        self.modes: dict[str, FormatMode] = {name: chain_from(requested)[0] for name in names}
        self.probes: dict[str, ProbeResult] = {}

    @property
    def probed(self) -> bool:
        """Every endpoint's form is known from an answered probe: worth keeping for reruns."""
        return self.settled and all(p.unprobed is None for p in self.probes.values())

    @property
    def settled(self) -> bool:
        """Nothing to probe: no format wanted, or every endpoint already known."""
        return self.requested == "none" or len(self.probes) == len(self.modes)

    def settle(self, name: str, result: ProbeResult) -> None:
        self.probes[name] = result
        self.modes[name] = result.response_format

    def describe(self) -> dict[str, Any]:
        """For the run header: each endpoint's format and how its probe went."""
        return {
            name: {"response_format": mode}
            | ({"probe": msgspec.to_builtins(self.probes[name])} if name in self.probes else {})
            for name, mode in self.modes.items()
        }

    def adopt(self, described: Mapping[str, Any]) -> None:
        """Take the formats a run's header recorded: a resumed run asks as it did."""
        for name, facts in described.items():
            mode = facts.get("response_format") if isinstance(facts, dict) else None
            probe = facts.get("probe") if isinstance(facts, dict) else None
            if isinstance(probe, dict) and probe.get("unprobed"):
                continue  # never found out: probe it now
            if name in self.modes and mode in _MODES:
                refused = probe.get("refused", {}) if isinstance(probe, dict) else {}
                self.settle(
                    name,
                    ProbeResult(
                        response_format=mode,
                        requests=0,
                        refused=dict(refused) if isinstance(refused, dict) else {},
                    ),
                )
