"""The ``litellm`` backend: every provider litellm speaks (Anthropic, Gemini, DeepSeek, Bedrock, …).

litellm is imported on first use (it takes about 2 s), with its cost map read from the package
(``LITELLM_LOCAL_MODEL_COST_MAP``) so importing it never reaches the network. Its own retries are
off: agora's retry layer owns retries, so every attempt is counted once. With endpoints, the
model is asked at those OpenAI-compatible servers under its own name (``Qwen/Qwen2.5-7B``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from agora.engine.inference.endpoints import EndpointPool
from agora.engine.inference.errors import (
    MOST_TOKENS,
    OVERLOAD_STATUS,
    RETRYABLE_STATUS,
    InferenceError,
)
from agora.engine.inference.formats import (
    PROBE_PROMPT,
    EndpointFormats,
    FormatMode,
    ProbeResult,
    Requested,
    probe_endpoint,
    wire_format,
)
from agora.engine.inference.patience import LivenessCheck, answer_or_abandon
from agora.engine.inference.redact import redact
from agora.engine.records import Completion, EndpointReport, Request

_RETRYABLE_NAMES = frozenset(
    {
        "RateLimitError",
        "Timeout",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
        "APIResponseValidationError",
    }
)


def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


class LiteLLMClient:
    backend = "litellm"

    def __init__(
        self,
        model: str,
        endpoints: Sequence[str],
        *,
        api_key: str | None,
        timeout_s: float,
        json_mode: bool = True,
        response_format: Requested = "json_schema",
        eject_after: int = 3,
        cooldown_s: float = 5.0,
        connections: int = 64,
        adaptive: bool = True,
        initial_concurrency: int = 4,
        deadline_s: float | None = None,
    ) -> None:
        self._model = model
        self._urls = [url.rstrip("/") for url in endpoints]
        # Without endpoints the provider is one pseudo-endpoint: its pace is learnt the same way.
        names = self._urls or [f"litellm:{model}"]
        self._pool = EndpointPool(
            names,
            ceiling=connections,
            initial=initial_concurrency,
            adaptive=adaptive,
            eject_after=eject_after,
            cooldown_s=cooldown_s,
        )
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._deadline_s = deadline_s if deadline_s is not None else 10 * timeout_s
        requested: Requested = response_format if json_mode else "none"
        self._requested = requested
        self.formats = EndpointFormats(names, requested)
        self._litellm: Any = None
        self._liveness = LivenessCheck(api_key, timeout_s)

    @property
    def model(self) -> str:
        return self._model

    def _import(self) -> Any:
        if self._litellm is None:
            self._litellm = import_litellm()
        return self._litellm

    async def prepare(self, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Find each endpoint's answer format: probed at servers, from litellm's model list
        for a provider (litellm turns a schema into the provider's own form)."""
        if known:
            self.formats.adopt(known)
        if self.formats.settled:
            return self.formats.describe()
        litellm = self._import()
        if not self._urls:
            key = next(iter(self.formats.modes))
            try:
                schemas = bool(litellm.supports_response_schema(model=self._model))
            except Exception:  # a model litellm does not know: ask for a bare JSON object
                schemas = False
            mode: FormatMode = "json_schema" if schemas else "json_object"
            if self._requested == "json_object":
                mode = "json_object"
            self.formats.settle(key, ProbeResult(response_format=mode, requests=0))
            return self.formats.describe()
        results = await asyncio.gather(*(self._probe(url) for url in self._urls))
        for url, result in zip(self._urls, results, strict=True):
            self.formats.settle(url, result)
        return self.formats.describe()

    def reports(self) -> list[EndpointReport]:
        return self._pool.reports()

    def _arguments(self, messages: list[dict[str, str]], url: str | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            # agora's own patience decides when to give up; this is a last-resort cap.
            "timeout": self._deadline_s + self._timeout_s,
            "max_retries": 0,
            "num_retries": 0,
            "drop_params": True,  # a provider without `seed` or JSON mode still answers
        }
        if url is not None:
            arguments["api_base"] = url
            arguments["api_key"] = self._api_key or "no-key"
            if not self._model.startswith("openai/"):
                # A vLLM model name such as "Qwen/Qwen2.5-7B" is not a litellm provider prefix.
                arguments["custom_llm_provider"] = "openai"
        elif self._api_key:
            arguments["api_key"] = self._api_key
        return arguments

    async def _probe(self, url: str) -> ProbeResult:
        litellm = self._import()

        async def send(response_format: dict[str, Any] | None) -> tuple[int | None, str]:
            arguments = self._arguments([{"role": "user", "content": PROBE_PROMPT}], url)
            arguments.update(temperature=0.0, max_tokens=8, seed=0)
            arguments["timeout"] = self._deadline_s
            if response_format is not None:
                arguments["response_format"] = response_format
            try:
                await litellm.acompletion(**arguments)
            except Exception as exc:
                status = None if _no_connection(exc) else getattr(exc, "status_code", None)
                return status, _as_inference_error(exc, self._api_key).reason
            return 200, ""

        return await probe_endpoint(send, self._requested)

    async def complete(self, request: Request) -> Completion:
        litellm = self._import()
        lease = await self._pool.acquire()
        url = lease.url if self._urls else None
        arguments = self._arguments(
            [{"role": m.role, "content": m.content} for m in request.messages],
            url,
        )
        arguments.update(
            temperature=request.temperature, max_tokens=request.max_tokens, seed=request.seed
        )
        response_format = wire_format(
            self.formats.modes[lease.url], request.answer_schema, request.json_answer
        )
        if response_format is not None:
            arguments["response_format"] = response_format
        started = time.perf_counter()
        verdict: bool | None = None  # stays None if the caller cancels: no word on health
        answered = overloaded = False
        try:
            try:
                response = await answer_or_abandon(
                    litellm.acompletion(**arguments),
                    pool=self._pool,
                    lease=lease,
                    timeout_s=self._timeout_s,
                    deadline_s=self._deadline_s,
                    alive=self._liveness.for_url(lease.url) if url is not None else None,
                )
            except InferenceError:
                verdict, overloaded = False, True
                raise
            except Exception as exc:
                error = _as_inference_error(exc, self._api_key)
                status = getattr(exc, "status_code", None)
                # litellm reports a refused connection as a 500 of its own making.
                answered = isinstance(status, int) and not _no_connection(exc)
                overloaded = status in OVERLOAD_STATUS
                # A 429 or a 4xx comes from a live server; resets, timeouts and 5xx do not.
                verdict = not error.retryable or status == 429
                raise error from None
            answered = True
            verdict = True
        finally:
            self._pool.release(
                lease,
                healthy=verdict,
                answered=answered,
                sample=verdict is True,
                overloaded=overloaded,
            )
        latency = time.perf_counter() - started
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise InferenceError("malformed response body", retryable=True) from None
        if text is None:
            raise InferenceError("response has no message content", retryable=True)
        if not isinstance(text, str):
            raise InferenceError("malformed response body: content is not text", retryable=True)
        usage = getattr(response, "usage", None)
        tokens_in = _count(getattr(usage, "prompt_tokens", 0))
        tokens_out = _count(getattr(usage, "completion_tokens", 0))
        if tokens_in is None or tokens_out is None:
            raise InferenceError(
                "malformed response body: usage is not a token count", retryable=True
            )
        return Completion(
            text=text,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_s=latency,
            model=self._model,
            cost_usd=_price(litellm, response),
        )

    async def aclose(self) -> None:
        await self._liveness.aclose()


def _count(value: Any) -> int | None:
    """A token count from a usage report, or None when it is not one (negative, huge, text)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MOST_TOKENS else None


def _price(litellm: Any, response: Any) -> float | None:
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # a model missing from litellm's price list has no known price
        return None


def _no_connection(exc: BaseException) -> bool:
    """Whether no HTTP answer came at all (refused, reset, timed out), looking through the
    exceptions litellm wraps around the transport's own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError) or type(current).__name__ in {
            "APIConnectionError",
            "APITimeoutError",
            "ConnectError",
            "ReadTimeout",
            "ConnectTimeout",
            "RemoteProtocolError",
            "ReadError",
        }:
            return True
        current = current.__cause__ or current.__context__
    return False


def _as_inference_error(exc: Exception, secret: str | None) -> InferenceError:
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    retryable = name in _RETRYABLE_NAMES or status in RETRYABLE_STATUS
    if isinstance(exc, RecursionError):
        return InferenceError("malformed response body (nested too deep)", retryable=True)
    message = str(getattr(exc, "message", "") or exc)[:4096]  # redacting a MB stalls the loop
    message = redact(message, secret)  # before cutting, so no piece survives
    message = (message.splitlines() or ["no message"])[0][:200]
    prefix = f"HTTP {status}" if isinstance(status, int) else name
    if _no_connection(exc) and status not in {401, 403, 429}:
        return InferenceError(f"connection failed: {name}: {message}", retryable=True)
    if name in {"AuthenticationError", "PermissionDeniedError"} or status in {401, 403}:
        # Word for word what the openai-http backend says.
        prefix = f"HTTP {status}" if isinstance(status, int) else "HTTP 401"
        message = "the server refused the credentials (check the API key variable)"
    return InferenceError(
        f"{prefix}: {message}", retryable=retryable, retry_after=_retry_after(exc)
    )


def _retry_after(exc: Exception) -> float | None:
    # litellm keeps the server's headers on the exception itself; the attached response's
    # headers are often empty.
    sources = (
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    )
    for headers in sources:
        value = headers.get("retry-after") if headers else None
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            return None  # an HTTP date: our own backoff applies
    return None
