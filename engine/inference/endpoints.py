"""Spread requests over a fleet of servers for one model, and route around the broken ones.

Each request goes to the healthy endpoint with the fewest requests in flight. An endpoint that
fails ``eject_after`` times in a row (connection errors, timeouts, 5xx; a 429 or a 4xx says
nothing about its health) is taken out for a cooldown; after it, one request probes it: success
brings it back, failure takes it out again for twice as long (up to ``max_cooldown_s``). When
every endpoint is out, the one due back soonest is tried: requests never wait on the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class _Endpoint:
    url: str
    in_flight: int = 0
    failures: int = 0
    out_until: float = 0.0
    cooldown_s: float = 0.0
    probing: bool = False
    # Bumped at each ejection: a request sent before it cannot count against the endpoint
    # again, nor vouch for it, when it ends late.
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    index: int
    url: str
    epoch: int
    probe: bool


class EndpointPool:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        eject_after: int = 3,
        cooldown_s: float = 5.0,
        max_cooldown_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        self._endpoints = [_Endpoint(url.rstrip("/")) for url in urls]
        self._eject_after = eject_after
        self._base_cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._endpoints)

    def healthy(self) -> list[bool]:
        now = self._clock()
        return [e.out_until <= now for e in self._endpoints]

    def acquire(self) -> Lease:
        now = self._clock()
        candidates = [
            i for i, e in enumerate(self._endpoints) if e.out_until <= now and not e.probing
        ]
        if candidates:
            index = min(candidates, key=lambda i: self._endpoints[i].in_flight)
        else:
            index = min(range(len(self._endpoints)), key=lambda i: self._endpoints[i].out_until)
        endpoint = self._endpoints[index]
        # Back from a cooldown: this request is the probe, and the only one until it ends.
        probe = endpoint.failures >= self._eject_after and endpoint.out_until <= now
        endpoint.probing = endpoint.probing or probe
        endpoint.in_flight += 1
        return Lease(index, endpoint.url, endpoint.epoch, probe)

    def release(self, lease: Lease, *, healthy: bool | None) -> None:
        """End a request; ``healthy`` is None when it ended without a verdict (cancelled)."""
        endpoint = self._endpoints[lease.index]
        endpoint.in_flight -= 1
        if lease.probe:
            endpoint.probing = False
        if lease.epoch != endpoint.epoch or healthy is None:
            return
        if healthy:
            endpoint.failures = 0
            endpoint.cooldown_s = 0.0
            return
        endpoint.failures += 1
        if endpoint.failures >= self._eject_after:
            endpoint.cooldown_s = min(
                self._max_cooldown_s,
                endpoint.cooldown_s * 2 if endpoint.cooldown_s else self._base_cooldown_s,
            )
            endpoint.out_until = self._clock() + endpoint.cooldown_s
            endpoint.epoch += 1
