"""Wait for an answer as long as the server is alive, and abandon it only when it is not.

A request that has waited ``timeout_s`` is not re-sent just because it is slow: a server that
answered any other request within the last ``timeout_s``, or that answers a cheap liveness
check now, is busy, not dead. Re-sending would put the same work on its queue twice (a one-slot
server computes the abandoned request anyway). So the wait goes on, the endpoint's limit is
lowered (it has more queued than it can serve in time), up to ``deadline_s`` in all. Only a
server that is silent is given up on; the request is then cancelled, which closes its
connection, and llama.cpp and vLLM stop computing a request whose client has gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from agora.engine.inference.endpoints import EndpointPool, Lease
from agora.engine.inference.errors import InferenceError

T = TypeVar("T")

# Says whether the server answers anything now (any HTTP status will do).
Liveness = Callable[[], Awaitable[bool]]


async def answer_or_abandon(
    work: Awaitable[T],
    *,
    pool: EndpointPool,
    lease: Lease,
    timeout_s: float,
    deadline_s: float,
    alive: Liveness | None,
) -> T:
    clock = pool.clock  # one clock: the pool's record of answers is read against it
    task = asyncio.ensure_future(work)
    started = clock()
    give_up_at = started + max(deadline_s, timeout_s)
    wait_until = started + timeout_s
    slowed = False
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, wait_until - clock()))
            if done:
                return task.result()
            now = clock()
            if now >= give_up_at:
                raise InferenceError(
                    f"no answer within {deadline_s:g} s (inference.request_deadline_s)",
                    retryable=True,
                )
            heard = pool.last_answer_at(lease)
            if heard > now - timeout_s:
                # It serves others while this one waits: a queue, so its limit may come down.
                wait_until = min(heard + timeout_s, give_up_at)
                if not slowed:
                    slowed = True
                    pool.slowed(lease)
            elif alive is not None and await alive():
                wait_until = min(clock() + timeout_s, give_up_at)
            else:
                raise InferenceError(
                    f"no answer within {timeout_s:g} s, and the server answered nothing else",
                    retryable=True,
                )
    finally:
        if not task.done():
            task.cancel()  # closes the connection: the server can stop working on it
            await asyncio.gather(task, return_exceptions=True)


class LivenessCheck:
    """``GET {url}/models`` on a session of its own, one check in flight per endpoint.

    Its own connections: the run's pool may have every connection busy with the very requests
    whose server is being checked, and a check queued behind them would call it dead."""

    def __init__(self, api_key: str | None, timeout_s: float) -> None:
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Long enough for a loaded machine's loopback, short next to any request timeout.
        self._timeout = aiohttp.ClientTimeout(total=min(10.0, max(2.0, timeout_s)))
        self._session: aiohttp.ClientSession | None = None
        self._checks: dict[str, asyncio.Task[bool]] = {}

    def for_url(self, url: str) -> Liveness:
        return lambda: self.check(url)

    async def check(self, url: str) -> bool:
        running = self._checks.get(url)
        if running is None or running.done():
            running = asyncio.ensure_future(self._get(url))
            self._checks[url] = running
        return await asyncio.shield(running)

    async def _get(self, url: str) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8), headers=self._headers
            )
        try:
            async with self._session.get(f"{url}/models", timeout=self._timeout) as response:
                await response.read()
                return True  # any HTTP status: something is there and answering
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def aclose(self) -> None:
        for task in self._checks.values():
            task.cancel()
        await asyncio.gather(*self._checks.values(), return_exceptions=True)
        self._checks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
