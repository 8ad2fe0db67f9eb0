"""Sharing Redis round trips between concurrent requests.

Under a burst, thousands of requests each want one small Redis operation. Instead of one
round trip each, `Coalescer` sends whatever has queued up while the previous round trip
was in flight as one pipeline, and `RecentReads` lets all requests for an event share one
read (of its counter, of its seat map) per short interval. Neither adds a delay when
traffic is light.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")
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


class RecentReads(Generic[K, R]):
    """A value read at most once per `max_age_s` per key, one read shared by every request
    waiting for it. For values where a fraction of a second of staleness is harmless: the
    gate's counter for the sold-out fast path (the worker decides every booking against the
    real counter), the seat map's snapshot (the worker refreshes it only every 250 ms)."""

    def __init__(self, read: Callable[[K], Awaitable[R]], max_age_s: float) -> None:
        self._read_one = read
        self._max_age = max_age_s
        self._seen: dict[K, tuple[float, R]] = {}
        self._reading: dict[K, asyncio.Task[R]] = {}

    async def get(self, key: K) -> R:
        seen = self._seen.get(key)
        if seen is not None and time.monotonic() - seen[0] < self._max_age:
            return seen[1]
        task = self._reading.get(key)
        if task is None:
            task = asyncio.create_task(self._read(key))
            self._reading[key] = task
        return await asyncio.shield(task)

    async def _read(self, key: K) -> R:
        try:
            value = await self._read_one(key)
            self._seen[key] = (time.monotonic(), value)
            return value
        finally:
            del self._reading[key]
