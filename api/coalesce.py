"""Sharing Redis round trips between concurrent requests.

Under a burst, thousands of requests each want one small Redis operation. Instead of one
round trip each, `Coalescer` sends whatever has queued up while the previous round trip
was in flight as one pipeline, and `AvailabilityView` lets all requests for an event share
one counter read per short interval. Neither adds a delay when traffic is light.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from shared.inventory import Inventory

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """`await submit(item)` gives `flush`'s answer for `item`, once `flush` has handled it
    together with every item other requests queued meanwhile (at most `max_batch` per round
    trip). `flush` answers each item in order."""

    def __init__(
        self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = 512
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue `item`; await the answer. A plain function returning the future: on the
        booking path every coroutine layer costs a frame to create and resume."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                answers = await self._flush([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)


class AvailabilityView:
    """The gate's counter as the API sees it: read at most once per `max_age_s` per event,
    one read shared by every request waiting for it. A stale value is harmless: the worker
    decides every booking against the real counter; this only feeds the sold-out fast path."""

    def __init__(self, inventory: Inventory, max_age_s: float) -> None:
        self._inventory = inventory
        self._max_age = max_age_s
        self._seen: dict[int, tuple[float, int | None]] = {}
        self._reading: dict[int, asyncio.Task[int | None]] = {}

    async def available(self, event_id: int) -> int | None:
        seen = self._seen.get(event_id)
        if seen is not None and time.monotonic() - seen[0] < self._max_age:
            return seen[1]
        task = self._reading.get(event_id)
        if task is None:
            task = asyncio.create_task(self._read(event_id))
            self._reading[event_id] = task
        return await asyncio.shield(task)

    async def _read(self, event_id: int) -> int | None:
        try:
            value = await self._inventory.available(event_id)
            self._seen[event_id] = (time.monotonic(), value)
            return value
        finally:
            del self._reading[event_id]
