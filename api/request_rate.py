"""Booking requests per second, from the API's own Prometheus counter
(`tickets_booking_requests_total`, every outcome), as the console shows it.

A counter gives a rate only between two readings, so each API process reads it once a second
and keeps a minute of readings. Under `python -m api` with several processes (Prometheus'
multiprocess mode) a reading adds up every process's files, as /metrics does, so whichever
process answers gives the rate of them all; those files are read in a thread, off the event
loop. A rate whose latest reading is older than STALE_S is not given at all."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import CollectorRegistry

from shared.metrics import BOOKING_REQUESTS

COUNTER = "tickets_booking_requests_total"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
INTERVAL_S = 1.0
STALE_S = 2.0  # a sampler that stopped must not leave its last rate on screen
KEPT = 61  # readings: a minute of history


def _total(families: Iterable[Metric]) -> float:
    total = 0.0
    for family in families:
        for sample in family.samples:
            if sample.name == COUNTER:
                total += sample.value
    return total


def booking_requests_total() -> float:
    """Booking requests answered so far, every outcome and (multiprocess) every process."""
    if MULTIPROC_DIR not in os.environ:
        return _total(BOOKING_REQUESTS.collect())  # this counter only, not the registry
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return _total(registry.collect())


class RequestRate:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._readings: deque[tuple[float, float]] = deque(maxlen=KEPT)

    def record(self, total: float) -> None:
        self._readings.append((self._clock(), total))

    async def read(self) -> None:
        if MULTIPROC_DIR in os.environ:
            total = await asyncio.to_thread(booking_requests_total)  # files of every process
        else:
            total = booking_requests_total()
        self.record(total)

    async def run(self) -> None:
        """Read once a second until cancelled."""
        while True:
            await self.read()
            await asyncio.sleep(INTERVAL_S)

    def per_s(self, window_s: float) -> float | None:
        """The rate over the last `window_s` (or as much of it as was read); None before two
        readings a second apart exist, or when the latest is older than STALE_S."""
        if not self._readings:
            return None
        latest_at, latest = self._readings[-1]
        if self._clock() - latest_at > STALE_S:
            return None
        oldest = next(
            ((t, v) for t, v in self._readings if latest_at - t <= window_s + INTERVAL_S / 2),
            self._readings[-1],
        )
        elapsed = latest_at - oldest[0]
        if elapsed < INTERVAL_S / 2:
            return None
        return max(latest - oldest[1], 0.0) / elapsed
