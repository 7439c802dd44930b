"""Retry a client's retryable failures with exponential backoff and jitter.

Wraps any ``LLMClient``. A retryable ``InferenceError`` (429, 5xx, timeout, reset, malformed
body) is tried again after ``min(max_delay, base · 2^k)`` scaled by a random factor in [½, 1],
or after the server's ``Retry-After`` when it sent one. Every attempt is counted in the
completion's ``requests``, so the decision record shows what an answer cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import numpy as np

from agora.engine.inference.errors import InferenceError
from agora.engine.inference.layer import ClientLayer
from agora.engine.protocols import LLMClient
from agora.engine.records import Completion, Request

# The longest Retry-After honoured; a server asking for more is retried after this.
_LONGEST_RETRY_AFTER_S = 300.0


class RetryingClient(ClientLayer):
    def __init__(
        self,
        inner: LLMClient,
        *,
        max_attempts: int,
        base_delay_s: float,
        max_delay_s: float,
        rng: np.random.Generator,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(inner)
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._rng = rng
        self._sleep = sleep
        self.retries = 0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _LONGEST_RETRY_AFTER_S)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return float(ceiling * self._rng.uniform(0.5, 1.0))

    async def complete(self, request: Request) -> Completion:
        requests = 0
        for attempt in range(self.max_attempts):
            try:
                completion = await self.inner.complete(request)
            except InferenceError as exc:
                requests += exc.requests
                last_attempt = attempt == self.max_attempts - 1
                if not exc.retryable or last_attempt:
                    suffix = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise InferenceError(
                        exc.reason + suffix, retryable=False, requests=requests
                    ) from exc
                self.retries += 1
                await self._sleep(self.delay(attempt, exc.retry_after))
                continue
            return msgspec.structs.replace(completion, requests=requests + completion.requests)
        raise AssertionError("unreachable: the loop returns or raises")
