"""Tick-end fsync off the event loop: the fsync of tick t runs in a thread while tick t + 1 is
decided. At most one is in flight; the next tick's close waits for it, so the log on disk is at
most one tick behind the log in the OS (which a killed process does not lose anyway: only a lost
machine can cost the last tick, and resume handles a shorter log like any other)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundSync:
    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agora-fsync")
        self._pending: Future[None] | None = None

    def __call__(self) -> None:
        """Start syncing what is written so far; first wait for (and surface) the last one."""
        self._wait()
        self._pending = self._executor.submit(self._sync)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()  # a failed fsync (a dying disk) stops the run here

    def drain(self) -> None:
        """Wait for the sync in flight and stop the thread; call before the log is closed."""
        try:
            self._wait()
        finally:
            self._executor.shutdown(wait=True)
