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
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.inference.endpoints import EndpointPool, Lease
from engine.inference.errors import InferenceError

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
    clock: Callable[[], float] = time.monotonic,
) -> T:
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
                    f"no answer within {deadline_s:g} s (inference.request_deadline_s), "
                    "though the server was alive",
                    retryable=True,
                )
            heard = pool.last_answer_at(lease)
            if heard > now - timeout_s:
                wait_until = min(heard + timeout_s, give_up_at)
            elif alive is not None and await alive():
                wait_until = min(clock() + timeout_s, give_up_at)
            else:
                raise InferenceError(
                    f"no answer within {timeout_s:g} s, and the server answered nothing else",
                    retryable=True,
                )
            if not slowed:
                slowed = True
                pool.slowed(lease)
    finally:
        if not task.done():
            task.cancel()  # closes the connection: the server can stop working on it
            await asyncio.gather(task, return_exceptions=True)
