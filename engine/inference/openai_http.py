"""The fast path: aiohttp straight to any OpenAI-compatible server (vLLM, SGLang, Ollama, OpenAI).

One session for the run, its connector sized to the run's concurrency (aiohttp's default stops
at 100 in flight), keep-alive on. Bodies are encoded and decoded with msgspec. Every failure
becomes an ``InferenceError`` that says whether a retry may help; no header, and so no API key,
ever reaches an error message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import msgspec

from engine.inference.endpoints import EndpointPool
from engine.inference.errors import InferenceError
from engine.records import Completion, Request

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_SNIPPET = 200


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ChatMessage(msgspec.Struct):
    content: str | None = None


class _ChatChoice(msgspec.Struct):
    message: _ChatMessage


class _ChatResponse(msgspec.Struct):
    choices: list[_ChatChoice]
    usage: _Usage | None = None
    model: str | None = None


class _WireMessage(msgspec.Struct, omit_defaults=True):
    role: str
    content: str


class _ResponseFormat(msgspec.Struct):
    type: str


class _ChatRequest(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[_WireMessage]
    temperature: float
    max_tokens: int
    seed: int
    response_format: _ResponseFormat | None = None


class OpenAIHTTPClient:
    backend = "openai-http"

    def __init__(
        self,
        endpoints: Sequence[str],
        model: str,
        *,
        api_key: str | None,
        timeout_s: float,
        connections: int,
        json_mode: bool,
        eject_after: int = 3,
        cooldown_s: float = 5.0,
    ) -> None:
        self._pool = EndpointPool(endpoints, eject_after=eject_after, cooldown_s=cooldown_s)
        self._model = model
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._connections = connections
        self._json_mode = json_mode
        self._session: aiohttp.ClientSession | None = None
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(_ChatResponse).decode

    @property
    def model(self) -> str:
        return self._model

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            connector = aiohttp.TCPConnector(
                limit=self._connections, limit_per_host=self._connections, keepalive_timeout=60
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=headers
            )
        return self._session

    def _body(self, request: Request) -> bytes:
        body = _ChatRequest(
            model=self._model,
            messages=[_WireMessage(m.role, m.content) for m in request.messages],
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            seed=request.seed,
            response_format=(
                _ResponseFormat("json_object") if self._json_mode and request.json_answer else None
            ),
        )
        return self._encode(body)

    async def complete(self, request: Request) -> Completion:
        session = self._open()
        index = self._pool.acquire()
        url = f"{self._pool.url(index)}/chat/completions"
        started = time.perf_counter()
        healthy = False
        try:
            try:
                async with session.post(url, data=self._body(request)) as response:
                    payload = await response.read()
                    status = response.status
                    if status != 200:
                        healthy = status < 500  # a 429 or a 4xx comes from a live server
                        raise _status_error(status, response.headers, payload, self._api_key)
            except TimeoutError:
                raise InferenceError(
                    f"no answer within {self._timeout_s:g} s", retryable=True
                ) from None
            except aiohttp.ClientError as exc:
                raise InferenceError(
                    f"connection failed: {type(exc).__name__}", retryable=True
                ) from None
            latency = time.perf_counter() - started
            try:
                parsed = self._decode(payload)
                text = parsed.choices[0].message.content
            except (msgspec.DecodeError, IndexError):
                raise InferenceError("malformed response body", retryable=True) from None
            if text is None:
                raise InferenceError("response has no message content", retryable=True)
            healthy = True
        finally:
            self._pool.release(index, healthy=healthy)
        usage = parsed.usage or _Usage()
        return Completion(
            text=text,
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
            latency_s=latency,
            model=parsed.model or self._model,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _status_error(status: int, headers: Any, payload: bytes, secret: str | None) -> InferenceError:
    retry_after = _retry_after(headers.get("Retry-After"))
    detail = payload[:_SNIPPET].decode("utf-8", "replace").strip()
    if secret:
        detail = detail.replace(secret, "[redacted]")
    if status == 401 or status == 403:
        reason = f"HTTP {status}: the server refused the credentials (check the API key variable)"
    elif status == 404:
        reason = f"HTTP 404: no such model or path ({detail})"
    else:
        reason = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    return InferenceError(reason, retryable=status in _RETRYABLE_STATUS, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
