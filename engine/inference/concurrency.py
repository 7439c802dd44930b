"""How many requests one server may have in flight: learnt from its latency, as TCP does.

A server's queue is invisible to the client, but its latency is not: while requests are served
at once (a vLLM batch) latency stays flat as more are sent; once they queue (a one-slot
llama.cpp server) each extra request adds a whole service time. ``AdaptiveLimit`` keeps a limit
per endpoint and adjusts it once per window of answers (a window holds about ``limit`` answers,
one round trip's worth):

- **slow start**: while the window's median latency stays within ``tolerance`` × the no-load
  latency (the lowest 10th-percentile latency of the recent windows), the limit doubles, so a
  large server is found in a few windows;
- after the first sign of congestion, **additive increase**: a quarter of √limit per good window
  (at least 0.25), so a one-slot server spends most of its time at one request and only now and
  then tries two;
- **multiplicative decrease**: a window slower than ``tolerance`` × the no-load latency shrinks
  the limit by the ratio (at most by half); an explicit overload (429, 503, a request still
  unanswered at its timeout) halves it, at most once per window so one burst is one signal.

Windows in which the limit was never reached say nothing about a larger limit (the run had
fewer requests to send): they may lower it, never raise it. ``inference.concurrency`` is the
ceiling; the floor is one request. The class is pure arithmetic on what it is told, so it is
tested without clocks or servers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class AdaptiveLimit:
    ceiling: int
    initial: int = 4
    floor: int = 1
    # A window this much slower than the no-load latency means requests are queueing.
    tolerance: float = 1.5
    # How many past windows the no-load latency is the minimum of: old enough to forget a
    # server that has since slowed for good, young enough to remember the last quiet spell.
    memory: int = 20
    smallest_window: int = 3
    limit: float = field(init=False)
    slow_start: bool = field(init=False, default=True)
    adjustments: int = field(init=False, default=0)
    _samples: list[float] = field(init=False, default_factory=list)
    _floors: deque[float] = field(init=False)
    _saturated: bool = field(init=False, default=False)
    _overload_spent: bool = field(init=False, default=False)
    # After a decrease, the next window's requests were mostly sent under the old limit: its
    # latency says nothing yet about the new one, so it may not decrease again (as TCP waits
    # a round trip after a cut).
    _settling: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.ceiling = max(self.floor, self.ceiling)
        self.limit = float(min(self.ceiling, max(self.floor, self.initial)))
        self._floors = deque(maxlen=self.memory)

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now."""
        return max(self.floor, min(self.ceiling, math.floor(self.limit)))

    def note_in_flight(self, in_flight: int) -> None:
        """Called as a request is sent: a window that reached the limit may raise it."""
        if in_flight >= self.allowed:
            self._saturated = True

    def on_answer(self, latency_s: float) -> None:
        """A request was answered (any HTTP answer: the server worked on it) in ``latency_s``."""
        self._samples.append(latency_s)
        if len(self._samples) >= max(self.smallest_window, self.allowed):
            self._close_window()

    def on_overload(self) -> None:
        """The server said it is overloaded (429, 503) or left a request unanswered too long."""
        if self._overload_spent:
            return  # one burst of 429s is one signal, not one halving per request
        self._overload_spent = True
        self.slow_start = False
        self._set(self.limit / 2)

    def on_late(self, waited_s: float) -> None:
        """A request is still unanswered after ``waited_s`` while its server answers others.

        Overload only if that is well past an unqueued answer's time: a server whose answers
        simply take longer than the timeout is slow, not queued (its latency says so)."""
        if self._floors and waited_s > self.tolerance * min(self._floors):
            self.on_overload()

    def _close_window(self) -> None:
        samples = sorted(self._samples)
        self._samples.clear()
        median = samples[len(samples) // 2]
        # The no-load latency is a low sample, not a median: a window's median may already
        # be queued (the first window sends `initial` at once to a server that may serve one),
        # while its fastest answers were served with little or nothing ahead of them. The
        # 10th percentile rather than the minimum, so one lucky answer does not set it.
        self._floors.append(samples[len(samples) // 10])
        baseline = min(self._floors)
        ratio = median / baseline if baseline > 0 else 1.0
        saturated, self._saturated = self._saturated, False
        self._overload_spent = False
        if self._settling:
            self._settling = False
            return
        if ratio > self.tolerance:
            self.slow_start = False
            self._set(self.limit * max(0.5, self.tolerance / ratio))
        elif saturated:
            if self.slow_start:
                self._set(self.limit * 2)
            else:
                self._set(self.limit + max(0.25, math.sqrt(self.limit) / 4))

    def _set(self, value: float) -> None:
        new = min(float(self.ceiling), max(float(self.floor), value))
        if new != self.limit:
            self.adjustments += 1
        if new < self.limit:
            self._settling = True
        self.limit = new
