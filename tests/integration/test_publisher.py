"""The API's publisher against a real broker: requests published together share produce
requests, yet each lands once, in order, in the partition its event's key maps to."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from api.publisher import Publisher
from shared.config import Settings
from shared.contracts import BookingRequested, decode_request, event_key, new_booking_id
from shared.errors import BrokerUnavailable

pytestmark = pytest.mark.integration


def _request(event_id: int, user: str, *, timeout_ms: int = 5000) -> BookingRequested:
    now_ms = int(time.time() * 1000)
    return BookingRequested(
        booking_id=new_booking_id(),
        event_id=event_id,
        user_id=user,
        quantity=1,
        requested_at_ms=now_ms,
        expires_at_ms=now_ms + timeout_ms,
    )


async def _read_all(settings: Settings, expect: int) -> dict[int, list[BookingRequested]]:
    """Every message on the topic, per partition, in offset order."""
    consumer = AIOKafkaConsumer(
        settings.topic,  # no group: every partition, from the start
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got: dict[int, list[BookingRequested]] = defaultdict(list)
    try:
        while sum(map(len, got.values())) < expect:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {sum(map(len, got.values()))} of {expect} messages arrived"
            for tp, records in batch.items():
                got[tp.partition] += [decode_request(r.value) for r in records]
    finally:
        await consumer.stop()
    return got


async def _partition_aiokafka_picks(settings: Settings, event_id: int) -> int:
    """Where aiokafka's own send() puts the event's key (the Java client's murmur2): a probe
    message, sent after the test read the topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.topic, b"probe", key=event_key(event_id))
        return sent.partition
    finally:
        await producer.stop()


async def test_concurrent_requests_each_land_once_in_order_in_their_events_partition(
    topics: Settings,
) -> None:
    publisher = Publisher(topics)
    await publisher.start()
    events = [11, 12, 13, 14, 15]
    sent = [_request(events[i % len(events)], f"u{i}") for i in range(1500)]
    try:
        await asyncio.gather(*(publisher.publish(m) for m in sent))
    finally:
        await publisher.stop()

    landed = await _read_all(topics, len(sent))
    ids = [m.booking_id for messages in landed.values() for m in messages]
    assert sorted(ids) == sorted(m.booking_id for m in sent)  # each exactly once
    for event_id in events:
        where = {
            p for p, messages in landed.items() if any(m.event_id == event_id for m in messages)
        }
        assert where == {await _partition_aiokafka_picks(topics, event_id)}
        (partition,) = where
        in_log = [m.booking_id for m in landed[partition] if m.event_id == event_id]
        assert in_log == [m.booking_id for m in sent if m.event_id == event_id]


async def test_a_request_past_its_deadline_is_refused_not_left_waiting(topics: Settings) -> None:
    publisher = Publisher(topics)
    await publisher.start()
    try:
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(publisher.publish(_request(21, "late", timeout_ms=0)), 5)
        # The publisher is not wedged by it: the next request is acknowledged.
        on_time = _request(21, "on-time")
        await asyncio.wait_for(publisher.publish(on_time), 10)
    finally:
        await publisher.stop()
    landed = await _read_all(topics, 1)
    assert on_time.booking_id in {m.booking_id for ms in landed.values() for m in ms}
