"""Requests/min and tokens/min limits, shared by every agent of the run.

Requests/min is a sliding window (asyncio-throttle). Tokens/min is a token bucket: a request
reserves its estimated size (prompt characters / 4 plus its ``max_tokens``) before it is sent and
settles the difference once the server reports its real usage, so the bucket follows what the
provider counts. A request larger than the whole bucket waits for a full bucket, never forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from asyncio_throttle.throttler import Throttler

from agora.engine.inference.layer import ClientLayer
from agora.engine.protocols import LLMClient
from agora.engine.records import Completion, Request


class TokenBucket:
    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = asyncio.Lock()  # first come, first served

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    async def take(self, tokens: int) -> None:
        wanted = min(float(tokens), self.capacity)
        async with self._lock:
            self._refill()
            while self.level < wanted:
                await self._sleep((wanted - self.level) / self.rate)
                self._refill()
            self.level -= wanted

    def settle(self, reserved: int, used: int) -> None:
        """Correct a reservation by what the server says was used (may leave a debt)."""
        self._refill()  # else a debt would be forgiven by the refill it skipped
        self.level = min(self.capacity, self.level + min(float(reserved), self.capacity) - used)


def estimate_tokens(request: Request) -> int:
    characters = sum(len(message.content) for message in request.messages)
    return characters // 4 + 1 + request.max_tokens


class LimitedClient(ClientLayer):
    def __init__(
        self,
        inner: LLMClient,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(inner)
        self._throttler = (
            Throttler(rate_limit=requests_per_minute, period=60.0, retry_interval=0.05)
            if requests_per_minute
            else None
        )
        self._bucket = (
            TokenBucket(tokens_per_minute, clock=clock, sleep=sleep) if tokens_per_minute else None
        )

    async def complete(self, request: Request) -> Completion:
        if self._throttler is not None:
            await self._throttler.acquire()  # type: ignore[no-untyped-call]
        reserved = estimate_tokens(request) if self._bucket is not None else 0
        if self._bucket is not None:
            await self._bucket.take(reserved)
        try:
            completion = await self.inner.complete(request)
        except BaseException:
            if self._bucket is not None:
                self._bucket.settle(reserved, 0)  # a failed or cancelled request used none
            raise
        if self._bucket is not None:
            self._bucket.settle(reserved, completion.tokens_in + completion.tokens_out)
        return completion
