"""``agora mock-server``: a real OpenAI-compatible HTTP server for demos, tests and compose files.

It answers ``/v1/chat/completions`` and ``/v1/completions`` in each world's expected format: a
world plugin may offer a ``text_responder`` that reads its own prompt text and answers like a
rule agent would; a prompt no responder claims gets a seeded answer built from the request's
JSON schema (``schema_answer.py``), so any world's structured asks are answered. Latency (fixed
or lognormal), a concurrency cap and faults (429 with Retry-After, 500, hangs past the client's
timeout, malformed JSON, dropped connections, prose instead of the format asked) are injected
at configured rates. Answers are drawn from the request's seed, so the same request gets the
same answer. It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

import msgspec
import numpy as np
from aiohttp import web

from agora.engine.inference.schema_answer import answer_from_schema
from agora.engine.records import Message

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class TextResponder(Protocol):
    def answer(self, messages: Sequence[Message], rng: np.random.Generator) -> str | None:
        """An answer in the world's format, or ``None`` when the prompt is not this world's."""
        ...


class MockSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str = "mock"
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    latency_sigma: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    max_concurrency: Annotated[int, msgspec.Meta(ge=0)] = 0  # 0: no cap
    rate_429: Rate = 0.0
    retry_after_s: Annotated[float, msgspec.Meta(ge=0.0)] = 1.0
    rate_500: Rate = 0.0
    rate_timeout: Rate = 0.0
    hang_s: Annotated[float, msgspec.Meta(ge=0.0)] = 30.0
    rate_malformed: Rate = 0.0
    rate_drop: Rate = 0.0
    # Answers in prose, not the format asked: a 200 the client must record as invalid. Drawn
    # from the request's seed, so a re-ask of the same request gets the same prose.
    rate_garbage: Rate = 0.0
    seed: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Which response formats it takes, as real servers differ: "all" (vLLM, OpenAI),
    # "json_object" (llama-cpp-python: HTTP 500 to json_schema), "none" (HTTP 400 to any).
    formats: Literal["all", "json_object", "none"] = "all"


class _WireMessage(msgspec.Struct):
    role: str
    content: str


class _ChatBody(msgspec.Struct):
    messages: list[_WireMessage]
    model: str | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None


class _CompletionBody(msgspec.Struct):
    prompt: str | list[str]
    model: str | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None


class MockStats(msgspec.Struct):
    requests: int = 0
    answered: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: dict[str, int] = msgspec.field(default_factory=dict)
    # Requests by the response_format they asked for ("json_schema", "json_object", "none").
    formats: dict[str, int] = msgspec.field(default_factory=dict)


class MockServer:
    def __init__(self, settings: MockSettings, responders: Sequence[TextResponder]) -> None:
        self.settings = settings
        self.responders = tuple(responders)
        self.stats = MockStats()
        self._faults = np.random.default_rng(settings.seed)
        self._latency = np.random.default_rng([settings.seed, 1])
        self._slots = (
            asyncio.Semaphore(settings.max_concurrency) if settings.max_concurrency else None
        )
        self._encode = msgspec.json.Encoder().encode

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **msgspec.to_builtins(self.stats)})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.settings.model, "object": "model"}]}
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = msgspec.json.decode(await request.read(), type=_ChatBody)
        except msgspec.DecodeError as exc:
            return _error(400, f"bad request body: {exc}")
        messages = [Message(m.role, m.content) for m in body.messages]  # type: ignore[arg-type]
        return await self._serve(
            request, [messages], body.seed, chat=True, form=body.response_format
        )

    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = msgspec.json.decode(await request.read(), type=_CompletionBody)
        except msgspec.DecodeError as exc:
            return _error(400, f"bad request body: {exc}")
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        return await self._serve(
            request,
            [[Message("user", p)] for p in prompts],
            body.seed,
            chat=False,
            form=body.response_format,
        )

    async def _serve(
        self,
        request: web.Request,
        conversations: list[list[Message]],
        seed: int | None,
        chat: bool,
        form: dict[str, Any] | None,
    ) -> web.StreamResponse:
        kind = str(form.get("type", "?")) if form is not None else "none"
        self.stats.formats[kind] = self.stats.formats.get(kind, 0) + 1
        refused = self._refuses(kind)
        self.stats.requests += 1
        if refused is not None:
            return refused
        self.stats.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
        try:
            return await self._respond(request, conversations, seed, chat, form)
        finally:
            self.stats.in_flight -= 1

    async def _respond(
        self,
        request: web.Request,
        conversations: list[list[Message]],
        seed: int | None,
        chat: bool,
        form: dict[str, Any] | None,
    ) -> web.StreamResponse:
        fault = self._draw_fault()
        if fault is not None:
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing can be written to a dropped connection
        if fault == "429":
            return _error(429, "rate limited", {"Retry-After": f"{self.settings.retry_after_s:g}"})
        if fault == "500":
            return _error(500, "internal server error")
        if fault == "timeout":
            await asyncio.sleep(self.settings.hang_s)
            return _error(504, "hung")
        if self._slots is not None:
            async with self._slots:
                await self._wait()
        else:
            await self._wait()
        if fault == "malformed":
            return web.Response(
                body=b'{"choices": [{"message": {"content": "trunc', content_type="application/json"
            )
        schema = _requested_schema(form)
        texts = [self._answer(c, seed, i, schema) for i, c in enumerate(conversations)]
        self.stats.answered += 1
        return web.Response(
            body=self._encode(self._payload(conversations, texts, chat)),
            content_type="application/json",
        )

    def _refuses(self, kind: str) -> web.Response | None:
        taken = self.settings.formats
        if kind == "none" or taken == "all":
            return None
        if taken == "json_object" and kind == "json_schema":
            # As llama-cpp-python answers it: a validation error reported as a 500.
            return _error(500, "response_format.type: Input should be 'text' or 'json_object'")
        if taken == "none":
            return _error(400, f"response_format {kind!r} is not supported")
        return None

    def _draw_fault(self) -> str | None:
        s = self.settings
        roll = float(self._faults.random())
        for name, rate in (
            ("drop", s.rate_drop),
            ("429", s.rate_429),
            ("500", s.rate_500),
            ("timeout", s.rate_timeout),
            ("malformed", s.rate_malformed),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None

    async def _wait(self) -> None:
        base = self.settings.latency_ms / 1000.0
        if base <= 0:
            return
        if self.settings.latency_sigma > 0:
            base *= float(self._latency.lognormal(0.0, self.settings.latency_sigma))
        await asyncio.sleep(base)

    def _answer(
        self, messages: list[Message], seed: int | None, index: int, schema: Any = None
    ) -> str:
        rng = np.random.default_rng([seed if seed is not None else 0, index])
        if self.settings.rate_garbage and rng.random() < self.settings.rate_garbage:
            self.stats.faults["garbage"] = self.stats.faults.get("garbage", 0) + 1
            return "Well, I would rather think about it some more before I decide."
        for responder in self.responders:
            text = responder.answer(messages, rng)
            if text is not None:
                return text
        if schema is not None:
            # No world claims the prompt, but the request says what an answer looks like.
            return json.dumps(answer_from_schema(schema, rng))
        return '{"reasoning": "the mock server has no responder for this prompt"}'

    def _payload(
        self, conversations: list[list[Message]], texts: list[str], chat: bool
    ) -> dict[str, Any]:
        prompt_tokens = sum(len(m.content) for c in conversations for m in c) // 4 + 1
        completion_tokens = sum(len(t) for t in texts) // 4 + 1
        if chat:
            choices: list[dict[str, Any]] = [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": texts[0]},
                    "finish_reason": "stop",
                }
            ]
            kind = "chat.completion"
        else:
            choices = [
                {"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(texts)
            ]
            kind = "text_completion"
        return {
            "id": f"mock-{self.stats.requests}",
            "object": kind,
            "created": int(time.time()),
            "model": self.settings.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _requested_schema(form: dict[str, Any] | None) -> Any:
    """The answer schema of a ``json_schema`` response_format, else None."""
    if not form or form.get("type") != "json_schema":
        return None
    spec = form.get("json_schema")
    return spec.get("schema") if isinstance(spec, dict) else None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "mock_fault", "code": status}}
    return web.json_response(body, status=status, headers=headers)


async def serve(
    host: str, port: int, server: MockServer, ready: asyncio.Event | None = None
) -> None:
    """Serve until cancelled; prints the bound address (port 0 picks a free one)."""
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    addresses = runner.addresses
    bound = addresses[0][1] if addresses else port
    print(f"agora mock-server listening on http://{host}:{bound}/v1", flush=True)
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
