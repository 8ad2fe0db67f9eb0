"""Booking events in tests: the topic read back (`published`); for the notifier's tests,
settings with a test's own events topic, group and SMTP server; buyers' accounts; events
made, published to the real topic, and the wait until the notifier's group has committed
past all of them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from scripts.waiting import eventually
from shared.config import Settings
from shared.contracts import (
    BookingEvent,
    Status,
    encode_booking_event,
    event_key,
    partition_of,
)
from shared.topics import ensure_topics


def notify_settings(settings: Settings, smtp_url: str) -> Settings:
    """`settings` (already namespaced) with the namespace's own events topic, dead letters
    and group, this SMTP server, no metrics port, and short pauses between retries."""
    return msgspec.structs.replace(
        settings.namespaced(settings.redis_prefix),
        smtp_url=smtp_url,
        notify_metrics_port=0,
        retry_backoff_max_s=0.5,
        consumer_session_timeout_ms=6000,
    )


@contextlib.asynccontextmanager
async def events_topics(settings: Settings) -> AsyncIterator[None]:
    """The settings' events and dead-letter topics, created now and deleted afterwards."""
    await ensure_topics(settings)
    try:
        yield
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        with contextlib.suppress(Exception):
            await admin.delete_topics(
                [
                    settings.topic,
                    settings.dlq_topic,
                    settings.events_topic,
                    settings.notify_dlq_topic,
                ]
            )
        await admin.close()


def add_account(database_url: str, user_id: str, email: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO accounts (user_id, email, password_hash) VALUES (%s, %s, 'x')",
            (user_id, email),
        )


@contextlib.asynccontextmanager
async def notifier_world(
    settings: Settings, smtp_url: str, accounts: dict[str, str]
) -> AsyncIterator[Settings]:
    """A notifier's settings (`notify_settings`) with its topics created for the block and
    these buyers (user id -> address) given accounts."""
    s = notify_settings(settings, smtp_url)
    for user_id, email in accounts.items():
        add_account(s.database_url, user_id, email)
    async with events_topics(s):
        yield s


class Events:
    """Changes of bookings in one sale, numbered as the outbox numbers them (seq per event)."""

    def __init__(self, event_id: int = 1) -> None:
        self.event_id = event_id
        self._seq = itertools.count(1)

    def change(
        self, user_id: str, status: Status, booking_id: uuid.UUID | None = None, quantity: int = 2
    ) -> BookingEvent:
        return BookingEvent(
            event_id=self.event_id,
            seq=next(self._seq),
            booking_id=booking_id or uuid.uuid4(),
            user_id=user_id,
            status=status,
            reason=None,
            seats=tuple(f"A-{n}" for n in range(1, quantity + 1)),
            quantity=quantity,
            price_cents=4250 * quantity,
            hold_expires_at=None,
            at="2026-12-04T10:00:00Z",
        )


async def publish(settings: Settings, messages: Iterable[BookingEvent | bytes]) -> None:
    """Each message as the relay sends it (key: the event id); raw bytes as they are."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for message in messages:
            if isinstance(message, BookingEvent):
                key, value = event_key(message.event_id), encode_booking_event(message)
            else:
                key, value = b"0", message
            await producer.send_and_wait(settings.events_topic, value, key=key)
    finally:
        await producer.stop()


async def wait_consumed(settings: Settings, timeout_s: float = 60.0) -> None:
    """Until the notifier's group has committed offsets at the end of every partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    await admin.start()
    try:
        # ensure_topics made it with the settings' partitions.
        partitions = [
            TopicPartition(settings.events_topic, p) for p in range(settings.topic_partitions)
        ]
        ends = await consumer.end_offsets(partitions)

        async def caught_up() -> bool:
            committed = await admin.list_consumer_group_offsets(settings.notify_group)
            return all(
                end == 0 or (tp in committed and committed[tp].offset >= end)
                for tp, end in ends.items()
            )

        await eventually(caught_up, "the notifier's group committed every event", timeout_s)
    finally:
        await admin.close()
        await consumer.stop()


async def dead_letters(settings: Settings) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """Everything on the notifier's dead-letter topic: (value, headers)."""
    consumer = AIOKafkaConsumer(
        settings.notify_dlq_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.notify_dlq_topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[tuple[bytes | None, dict[str, bytes]]] = []
        while len(found) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            found += [(r.value, dict(r.headers)) for r in batch.get(tp, [])]
        return found
    finally:
        await consumer.stop()


async def published(settings: Settings, event_id: int, count: int) -> list[dict[str, Any]]:
    """The event's messages on the booking-events topic, once `count` are there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = range(settings.topic_partitions)  # as ensure_topics created it
        tp = TopicPartition(settings.events_topic, partition_of(event_id, partitions))
        consumer.assign([tp])
        consumer.seek(tp, 0)
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            while len(messages) < count:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.key == str(event_id).encode():
                        messages.append(json.loads(record.value or b""))
        return messages
    finally:
        await consumer.stop()
