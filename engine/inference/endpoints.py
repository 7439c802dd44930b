"""Spread requests over a fleet of servers for one model, at a pace each server can take.

Each endpoint has an ``AdaptiveLimit``: how many requests it may have in flight, learnt from its
latency (see ``concurrency.py``), with ``inference.concurrency`` as the ceiling. A request goes
to the healthy endpoint with the most room under its limit; when every endpoint is at its limit
the request waits here, in the client, instead of in the server's queue, where it would only
time out and be sent again.

An endpoint that fails ``eject_after`` times in a row (connection errors, timeouts, 5xx; a 429
or a 4xx says nothing about its health) is taken out for a cooldown; after it, one request
probes it: success brings it back, failure takes it out again for twice as long (up to
``max_cooldown_s``). When every endpoint is out, the one due back soonest is tried.

The pool also remembers when each endpoint last answered anything, so a caller whose request
has waited long can tell a server that is busy (it answers others) from one that is dead.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agora.engine.inference.concurrency import AdaptiveLimit
from agora.engine.records import EndpointReport


@dataclass(slots=True)
class _Endpoint:
    url: str
    limit: AdaptiveLimit
    in_flight: int = 0
    failures: int = 0
    out_until: float = 0.0
    cooldown_s: float = 0.0
    probing: bool = False
    # Bumped at each ejection: a request sent before it cannot count against the endpoint
    # again, nor vouch for it, when it ends late.
    epoch: int = 0
    last_answer_at: float = float("-inf")
    answers: int = 0
    most_in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    index: int
    url: str
    epoch: int
    probe: bool
    sent_at: float


@dataclass(slots=True)
class EndpointPool:
    urls: Sequence[str]
    ceiling: int = 1_000_000
    initial: int = 4
    adaptive: bool = True
    eject_after: int = 3
    cooldown_s: float = 5.0
    max_cooldown_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _endpoints: list[_Endpoint] = field(init=False)
    _waiters: deque[asyncio.Future[None]] = field(init=False, default_factory=deque)
    # Wake-ups at the end of cooldowns: an endpoint coming back is room no release announces.
    _returns: list[asyncio.TimerHandle] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("an endpoint pool needs at least one URL")
        # Not adaptive: the ceiling from the start, as a fixed limit (no latency can move it).
        initial = self.initial if self.adaptive else self.ceiling
        self._endpoints = [
            _Endpoint(url.rstrip("/"), AdaptiveLimit(ceiling=self.ceiling, initial=initial))
            for url in self.urls
        ]

    def __len__(self) -> int:
        return len(self._endpoints)

    def healthy(self) -> list[bool]:
        now = self.clock()
        return [e.out_until <= now for e in self._endpoints]

    def _pick(self, now: float) -> int | None:
        endpoints = self._endpoints
        candidates = [i for i, e in enumerate(endpoints) if e.out_until <= now and not e.probing]
        if not candidates:
            # Every endpoint is out: the one due back soonest gets one request at a time (a
            # probe), so a lone endpoint's ejection still holds its traffic back.
            idle = [i for i, e in enumerate(endpoints) if not e.probing and e.in_flight == 0]
            if not idle:
                return None
            candidates = [min(idle, key=lambda i: endpoints[i].out_until)]
        open_ = [i for i in candidates if endpoints[i].in_flight < endpoints[i].limit.allowed]
        if not open_:
            return None
        return min(open_, key=lambda i: endpoints[i].in_flight / endpoints[i].limit.allowed)

    def try_acquire(self) -> Lease | None:
        """A slot on the endpoint with the most room, or None when all are at their limit."""
        now = self.clock()
        index = self._pick(now)
        if index is None:
            return None
        endpoint = self._endpoints[index]
        # Back from a cooldown (or the only one left to try): this request is the probe, and
        # the only one until it ends.
        probe = endpoint.failures >= self.eject_after
        endpoint.probing = endpoint.probing or probe
        endpoint.in_flight += 1
        endpoint.most_in_flight = max(endpoint.most_in_flight, endpoint.in_flight)
        if self.adaptive:
            endpoint.limit.note_in_flight(endpoint.in_flight)
        return Lease(index, endpoint.url, endpoint.epoch, probe, now)

    async def acquire(self) -> Lease:
        """A slot, waiting (first come, first served) while every endpoint is at its limit."""
        if not self._waiters:
            lease = self.try_acquire()
            if lease is not None:
                return lease
        front = False
        while True:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if front:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # the slot it was woken for goes to the next in line
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
            lease = self.try_acquire()
            if lease is not None:
                if self._pick(self.clock()) is not None:
                    self._wake()  # more room opened than this one slot (the limit grew)
                return lease
            front = True  # woken, but the room went (an ejection): keep its place in line

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(
        self,
        lease: Lease,
        *,
        healthy: bool | None,
        answered: bool = False,
        sample: bool = False,
        overloaded: bool = False,
    ) -> None:
        """End a request. ``healthy`` is None when it ended without a verdict (cancelled);
        ``answered``: the server sent an HTTP answer (it is alive); ``sample``: a served answer,
        whose latency teaches the limit (an instant error would teach it a false no-load time);
        ``overloaded``: the server said it is overloaded, or was too slow to answer."""
        endpoint = self._endpoints[lease.index]
        endpoint.in_flight -= 1
        now = self.clock()
        if answered:
            endpoint.last_answer_at = now
            endpoint.answers += 1
        if self.adaptive and lease.epoch == endpoint.epoch:
            if overloaded:
                endpoint.limit.on_overload()
            elif sample:
                endpoint.limit.on_answer(now - lease.sent_at)
        if lease.probe:
            endpoint.probing = False
        self._wake()  # a slot is free, and the limit may have grown
        if lease.epoch != endpoint.epoch or healthy is None:
            return
        if healthy:
            endpoint.failures = 0
            endpoint.cooldown_s = 0.0
            endpoint.out_until = min(endpoint.out_until, now)  # a probe answered: back now
            return
        endpoint.failures += 1
        if endpoint.failures >= self.eject_after:
            endpoint.cooldown_s = min(
                self.max_cooldown_s,
                endpoint.cooldown_s * 2 if endpoint.cooldown_s else self.cooldown_s,
            )
            endpoint.out_until = now + endpoint.cooldown_s
            endpoint.epoch += 1
            self._wake_at_return(endpoint.cooldown_s)

    def _wake_at_return(self, delay_s: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # used without a loop (a unit test): nobody can be waiting
        self._returns = [handle for handle in self._returns if not handle.cancelled()]
        self._returns.append(loop.call_later(delay_s, self._wake_all))

    def _wake_all(self) -> None:
        waiters = list(self._waiters)
        self._waiters.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def slowed(self, lease: Lease) -> None:
        """A request has waited past its timeout on a server that answers others meanwhile:
        a queue, if it has waited well past what an unqueued answer takes."""
        endpoint = self._endpoints[lease.index]
        if self.adaptive and lease.epoch == endpoint.epoch:
            endpoint.limit.on_late(self.clock() - lease.sent_at)

    def last_answer_at(self, lease: Lease) -> float:
        return self._endpoints[lease.index].last_answer_at

    def reports(self) -> list[EndpointReport]:
        return [
            EndpointReport(
                url=e.url,
                limit=e.limit.allowed,
                most_in_flight=e.most_in_flight,
                answers=e.answers,
                adjustments=e.limit.adjustments,
            )
            for e in self._endpoints
        ]
