"""Retrying while a dependency is down: doubling pauses that a stop request cuts short.
Which failures are worth retrying is shared/failures.py's call. A process that needs Kafka to
work (the worker, the notifier) also waits for it at start (`Backoff.started`), rather than
exiting and leaning on its supervisor; the API instead starts at once and answers 503 until
Kafka is back (api/publisher.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from shared.errors import Stopped
from shared.failures import classify
from shared.metrics import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")


class Client(Protocol):
    """A Kafka client as aiokafka makes them: started once, stopped once."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


C = TypeVar("C", bound=Client)

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

    async def _unless_stopped(self, work: Awaitable[None]) -> bool:
        """Run `work` to its end unless asked to stop first (then it is cancelled): True if
        it ended."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return False
        task.result()  # its error, if it failed
        return True

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

    async def started(self, make: Callable[[], C], what: str) -> C:
        """A client from `make()` once its start() succeeded, waiting for Kafka meanwhile:
        each failed attempt's client is stopped (a half-started aiokafka client cannot start
        again) and a new one tried after the pause. Raises Stopped if asked to stop first."""

        async def attempt() -> C:
            client = make()
            try:
                # A broker that accepts connections but does not answer yet can hold start()
                # for a while: a stop request does not wait for it.
                if not await self._unless_stopped(client.start()):
                    raise Stopped(f"stopped while starting the {what}")
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.stop()  # its connections, and its tasks if any started
                raise
            return client

        return await self.retry(attempt, f"starting the {what} (Kafka)")


async def stop_clients(clients: Sequence[Client]) -> None:
    """Stop each client in order, every one even if Kafka is down. aiokafka's consumer,
    stopped while a broker is unreachable, re-raises the cancellation of its own fetch
    retry (Fetcher.close awaits the task it cancelled); that must not cut the shutdown
    short, so it is swallowed unless this task itself is being cancelled."""
    for client in clients:
        try:
            await client.stop()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            log.warning("%s stopped with a stray cancellation", type(client).__name__)
