"""The outbox relay: sends the booking-events outbox (consumer/outbox.py) to Kafka.

Changes are read in seq order per event (each as its message, built by PostgreSQL from the
change and its booking), published through an idempotent producer with the event id as key
(one partition per event, in order), and the event's mark in `booking_events_relayed` is
moved only after the broker acknowledged them; a crash in between sends them again, with
the same `seq`, which is what consumers dedupe on. Every worker runs a relay, but only the
one holding a PostgreSQL advisory lock sends: two relays would interleave their sends of one
event. The lock belongs to the relay's own connection, so a relay that dies (or loses its
connection) frees it, and another worker's relay takes over within `LOCK_RETRY_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from psycopg.rows import dict_row, tuple_row

from consumer.backoff import Backoff
from shared.config import Settings
from shared.contracts import event_key, partition_of
from shared.db import queries
from shared.errors import Stopped
from shared.metrics import BOOKING_EVENTS_RELAYED, OUTBOX_UNSENT

log = logging.getLogger(__name__)

LOCK_KEY = 0x7E1A_7000_0017  # pg_advisory_lock key of the relay (any fixed bigint)
LOCK_RETRY_S = 1.0  # how often a standby relay tries the lock
IDLE_POLL_S = 0.05  # how often the relay looks for rows when no batch nudged it
ROWS_PER_ROUND = 10_000


class Relay:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer, backoff: Backoff) -> None:
        self._settings = settings
        self._producer = producer
        self._backoff = backoff
        self._nudged = asyncio.Event()
        self.relayed = 0

    def nudge(self) -> None:
        """A batch committed outbox rows: look now rather than at the next poll."""
        self._nudged.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop`, then drain what is left; a lost connection or an unreachable
        broker is retried (until `stop`: the rows wait in the outbox for the next relay)."""
        while not stop.is_set():
            try:
                await self._backoff.retry(lambda: self._session(stop), "outbox relay")
            except Stopped:
                return

    async def _session(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._settings.database_url, autocommit=True, row_factory=dict_row
        ) as conn:
            while not await self._locked(conn):
                if not await self._backoff.pause(LOCK_RETRY_S):
                    return
            await conn.execute(queries.relay_plan)
            log.info("outbox relay: this worker sends the booking events")
            try:
                while True:
                    if await self._round(conn) < ROWS_PER_ROUND:
                        if stop.is_set():
                            return  # drained: what the last batches wrote is sent
                        await self._wait(IDLE_POLL_S)
            finally:
                OUTBOX_UNSENT.set(0)

    async def _locked(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        cur = await conn.execute(queries.relay_lock, {"key": LOCK_KEY})
        row = await cur.fetchone()
        return bool(row and row["locked"])

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudged.wait(), seconds)
        self._nudged.clear()

    async def _round(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Send one round of each event's unsent changes and move the events' marks;
        return how many were sent."""
        cur = await conn.execute(queries.booking_events_backlog)
        backlog = await cur.fetchall()
        OUTBOX_UNSENT.set(sum(row["event_seq"] - row["sent"] for row in backlog))
        rounds: list[tuple[int, int, list[str]]] = []  # event id, its last seq, messages
        count = 0
        async with conn.cursor(row_factory=tuple_row) as rows:
            for event in backlog:
                if count >= ROWS_PER_ROUND:
                    break
                await rows.execute(
                    queries.unsent_booking_events,
                    {"event_id": event["event_id"], "sent": event["sent"], "limit": ROWS_PER_ROUND},
                )
                found = await rows.fetchall()
                if found:
                    rounds.append((event["event_id"], found[-1][0], [m for _, m in found]))
                    count += len(found)
        if not count:
            return 0
        await self._send(rounds)
        await conn.execute(
            queries.mark_booking_events_relayed,
            {"event_ids": [e for e, _, _ in rounds], "seqs": [last for _, last, _ in rounds]},
        )
        self.relayed += count
        BOOKING_EVENTS_RELAYED.inc(count)
        return count

    async def _send(self, rounds: Sequence[tuple[int, int, list[str]]]) -> None:
        """Publish each event's messages in order as record batches of its partition, and
        wait for every acknowledgement."""
        topic = self._settings.events_topic
        partitions = await self._producer.partitions_for(topic)
        acks: list[asyncio.Future[Any]] = []
        batches: dict[int, Any] = {}
        for event_id, _, messages in rounds:
            partition, key = partition_of(event_id, partitions), event_key(event_id)
            batch = batches.get(partition)
            for message in messages:
                value = message.encode()
                if batch is None or batch.append(key=key, value=value, timestamp=None) is None:
                    if batch is not None:  # full: send it, start the next
                        acks.append(
                            await self._producer.send_batch(batch, topic, partition=partition)
                        )
                    batch = batches[partition] = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
        for partition, batch in batches.items():
            acks.append(await self._producer.send_batch(batch, topic, partition=partition))
        for result in await asyncio.gather(*acks, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result  # no mark moved: the next session sends them again
