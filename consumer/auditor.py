"""A side task of the worker: the lie detector as a metric.

Every TICKETS_AUDIT_INTERVAL_S it audits the events this worker decided bookings for in the
last hour and sets `tickets_audit_events{verdict}` to how many are in each verdict, so a
dashboard or an alert sees DRIFT or OVERSOLD without anyone calling the audit endpoint, and
`tickets_held_seats` to their held seats (the console's chart of held stock). Labels stay
bounded: verdicts, never event ids.

Only the events whose partition the worker holds now are audited: after a rebalance the
events of a revoked partition are another worker's, and counting them here too would count
their held seats twice in `sum(tickets_held_seats)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer

from shared.audit import Verdict, audit_event
from shared.contracts import partition_of
from shared.db import Pool
from shared.failures import classify
from shared.inventory import Inventory
from shared.metrics import AUDIT_EVENTS, AUDIT_RUNS, HELD_SEATS

log = logging.getLogger(__name__)

RECENT_S = 3600.0


def assigned_events(consumer: AIOKafkaConsumer, topic: str) -> Callable[[int], bool]:
    """Whether an event's partition of `topic` is assigned to `consumer` now."""

    def owns(event_id: int) -> bool:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return True  # no metadata yet: nothing was revoked either
        mine = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
        return partition_of(event_id, partitions) in mine

    return owns


class Auditor:
    def __init__(
        self,
        pool: Pool,
        inventory: Inventory,
        interval_s: float,
        owns: Callable[[int], bool] = lambda _: True,
    ) -> None:
        self._pool = pool
        self._inventory = inventory
        self._interval = interval_s
        self._owns = owns  # events of partitions this worker holds (assigned_events)
        self._recent: dict[int, float] = {}

    def saw(self, event_ids: Iterable[int]) -> None:
        now = time.monotonic()
        for event_id in event_ids:
            self._recent[event_id] = now

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if stop.is_set():
                return
            try:
                await self.audit_recent()
            except Exception as exc:
                if not classify(exc).retryable:
                    raise
                # A dependency is down: the batch loop retries and reports it; skip a round.
                log.warning("audit round skipped: %r", exc)

    async def audit_recent(self) -> dict[Verdict, int]:
        cutoff = time.monotonic() - RECENT_S
        for event_id in [
            e for e, seen in self._recent.items() if seen < cutoff or not self._owns(e)
        ]:
            del self._recent[event_id]
        counts = dict.fromkeys(Verdict, 0)
        held = 0
        for event_id in list(self._recent):
            report = await audit_event(self._pool, self._inventory, event_id)
            if report is not None:
                counts[report.verdict] += 1
                held += report.held_quantity
        for verdict, count in counts.items():
            AUDIT_EVENTS.labels(verdict.value).set(count)
        HELD_SEATS.set(held)
        AUDIT_RUNS.inc()
        return counts
