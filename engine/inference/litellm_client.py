"""The ``litellm`` backend: every provider litellm speaks (Anthropic, Gemini, DeepSeek, Bedrock, …).

litellm is imported on first use (it takes about 2 s), with its cost map read from the package
(``LITELLM_LOCAL_MODEL_COST_MAP``) so importing it never reaches the network. Its own retries are
off: agora's retry layer owns retries, so every attempt is counted once. With endpoints, the
model is asked at those OpenAI-compatible servers under its own name (``Qwen/Qwen2.5-7B``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from engine.inference.endpoints import EndpointPool
from engine.inference.errors import InferenceError
from engine.records import Completion, Request

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
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
        json_mode: bool,
        eject_after: int = 3,
        cooldown_s: float = 5.0,
    ) -> None:
        self._model = model
        self._pool = (
            EndpointPool(endpoints, eject_after=eject_after, cooldown_s=cooldown_s)
            if endpoints
            else None
        )
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._json_mode = json_mode
        self._litellm: Any = None

    @property
    def model(self) -> str:
        return self._model

    async def complete(self, request: Request) -> Completion:
        if self._litellm is None:
            self._litellm = import_litellm()
        litellm = self._litellm
        lease = self._pool.acquire() if self._pool is not None else None
        arguments: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "seed": request.seed,
            "timeout": self._timeout_s,
            "max_retries": 0,
            "num_retries": 0,
            "drop_params": True,  # a provider without `seed` or JSON mode still answers
        }
        if lease is not None:
            arguments["api_base"] = lease.url
            arguments["api_key"] = self._api_key or "no-key"
            if not self._model.startswith("openai/"):
                # A vLLM model name such as "Qwen/Qwen2.5-7B" is not a litellm provider prefix.
                arguments["custom_llm_provider"] = "openai"
        elif self._api_key:
            arguments["api_key"] = self._api_key
        if self._json_mode and request.json_answer:
            arguments["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        verdict: bool | None = None  # stays None if the caller cancels: no word on health
        try:
            response = await litellm.acompletion(**arguments)
            verdict = True
        except Exception as exc:
            error = _as_inference_error(exc, self._api_key)
            # A 429 or a 4xx comes from a live server; resets, timeouts and 5xx do not.
            verdict = not error.retryable or getattr(exc, "status_code", None) == 429
            raise error from None
        finally:
            if lease is not None and self._pool is not None:
                self._pool.release(lease, healthy=verdict)
        latency = time.perf_counter() - started
        try:
            text = response.choices[0].message.content
        except (AttributeError, IndexError):
            raise InferenceError("malformed response body", retryable=True) from None
        if text is None:
            raise InferenceError("response has no message content", retryable=True)
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=latency,
            model=self._model,
            cost_usd=_price(litellm, response),
        )

    async def aclose(self) -> None:
        return None


def _price(litellm: Any, response: Any) -> float | None:
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # a model missing from litellm's price list has no known price
        return None


def _as_inference_error(exc: Exception, secret: str | None) -> InferenceError:
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    retryable = name in _RETRYABLE_NAMES or status in _RETRYABLE_STATUS
    message = str(getattr(exc, "message", "") or exc)
    if secret:
        message = message.replace(secret, "[redacted]")  # before cutting, so no piece survives
    message = (message.splitlines() or ["no message"])[0][:200]
    prefix = f"HTTP {status}" if isinstance(status, int) else name
    if name in {"AuthenticationError", "PermissionDeniedError"}:
        message = "the provider refused the credentials (check the API key variable)"
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
