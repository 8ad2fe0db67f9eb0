"""Retrying while a dependency is down: doubling pauses that a stop request cuts short.
Which failures are worth retrying is shared/failures.py's call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from shared.errors import Stopped
from shared.failures import classify
from shared.metrics import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.1


def _nothing() -> None:
    pass


class Backoff:
    def __init__(self, stop: asyncio.Event, max_delay_s: float) -> None:
        self._stop = stop
        self._max_delay_s = max_delay_s

    def delays(self) -> Iterator[float]:
        """Endless: doubling from 0.1 s up to the maximum (TICKETS_RETRY_BACKOFF_MAX_S)."""
        delay = FIRST_DELAY_S
        while True:
            yield delay
            delay = min(delay * 2, self._max_delay_s)

    async def pause(self, seconds: float) -> bool:
        """Wait unless asked to stop; True if the caller should carry on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return not self._stop.is_set()

    async def retry(
        self,
        attempt: Callable[[], Awaitable[T]],
        what: str,
        on_failure: Callable[[], None] = _nothing,
    ) -> T:
        """`attempt()` until it succeeds, pausing after each failure of a dependency (and
        calling `on_failure`); any other error is raised at once. Raises Stopped if asked
        to stop first."""
        for delay in self.delays():
            try:
                return await attempt()
            except Exception as exc:
                failure = classify(exc)
                if not failure.retryable:
                    raise
                DEPENDENCY_ERRORS.labels(failure.dependency).inc()
                log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
                on_failure()
            if not await self.pause(delay):
                raise Stopped(f"stopped before {what} succeeded")
        raise AssertionError("unreachable: delays() never ends")
