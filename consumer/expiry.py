"""The expiry sweep: which events of this worker's partitions have holds past their deadline.

Expiry is driven by the ledger (`hold_expires_at`, indexed), never by Redis TTLs: every
transaction of an event expires its due holds first (consumer/lifecycle.py), and this sweep
gives an event without new commands such a transaction, every `interval_s`. Only the owner
of an event's partition sweeps it, so expiries stay ordered with the event's commands; a
worker that takes a partition over finds what its previous owner left, as the ledger keeps
it.
"""

from __future__ import annotations

import datetime as dt
import time

from aiokafka import AIOKafkaConsumer

from shared.contracts import partition_of
from shared.db import Pool, fetch_all, queries


class ExpirySweep:
    def __init__(self, pool: Pool, consumer: AIOKafkaConsumer, topic: str, interval_s: float):
        self._pool = pool
        self._consumer = consumer
        self._topic = topic
        self._interval_s = interval_s
        self._next = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() >= self._next

    async def events(self) -> list[int]:
        """The events to sweep now: due holds, and their partition assigned to this worker."""
        self._next = time.monotonic() + self._interval_s
        owned = {tp.partition for tp in self._consumer.assignment() if tp.topic == self._topic}
        if not owned:
            return []
        partitions = self._consumer.partitions_for_topic(self._topic)
        if not partitions:
            return []
        now = dt.datetime.now(dt.UTC)
        rows = await fetch_all(self._pool, queries.due_events, {"now": now})
        return [
            row["event_id"] for row in rows if partition_of(row["event_id"], partitions) in owned
        ]
