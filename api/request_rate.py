"""Booking requests per second, from the API's own Prometheus counter
(`tickets_booking_requests_total`, every outcome), as the console shows it.

A counter gives a rate only between two readings, so each API process reads it once a second
and keeps a minute of readings. Under `python -m api` with several processes (Prometheus'
multiprocess mode) a reading adds up every process's files, as /metrics does, so whichever
process answers gives the rate of them all."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

from prometheus_client import REGISTRY, multiprocess
from prometheus_client.registry import CollectorRegistry

COUNTER = "tickets_booking_requests_total"
INTERVAL_S = 1.0
KEPT = 61  # readings: a minute of history


def _registry() -> CollectorRegistry:
    """What /metrics exposes: every process's files in multiprocess mode, else this one's."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def booking_requests_total() -> float:
    """Booking requests answered so far, every outcome and (multiprocess) every process."""
    total = 0.0
    for family in _registry().collect():
        for sample in family.samples:
            if sample.name == COUNTER:
                total += sample.value
    return total


class RequestRate:
    def __init__(self) -> None:
        self._readings: deque[tuple[float, float]] = deque(maxlen=KEPT)

    def read(self) -> None:
        self._readings.append((time.monotonic(), booking_requests_total()))

    async def run(self) -> None:
        """Read once a second until cancelled."""
        while True:
            self.read()
            await asyncio.sleep(INTERVAL_S)

    def per_s(self, window_s: float) -> float | None:
        """The rate over the last `window_s` (or as much of it as was read); None before two
        readings a second apart exist."""
        if not self._readings:
            return None
        now, latest = self._readings[-1]
        oldest = next(
            ((t, v) for t, v in self._readings if now - t <= window_s + INTERVAL_S / 2),
            self._readings[-1],
        )
        elapsed = now - oldest[0]
        if elapsed < INTERVAL_S / 2:
            return None
        return max(latest - oldest[1], 0.0) / elapsed
