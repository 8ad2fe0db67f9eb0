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
from shared.contracts import BookingRequested, decode_command, event_key, new_booking_id
from shared.errors import BrokerUnavailable, Unacknowledged

pytestmark = pytest.mark.integration


def _request(
    event_id: int, user: str, *, timeout_ms: int = 5000, now_ms: int | None = None
) -> BookingRequested:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
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
                got[tp.partition] += [decode_command(r.value) for r in records]
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
        with pytest.raises(BrokerUnavailable) as refused:
            await asyncio.wait_for(publisher.publish(_request(21, "late", timeout_ms=0)), 5)
        # Never sent, so it cannot reach the topic: the API need not mark it abandoned.
        assert not isinstance(refused.value, Unacknowledged)
        # The publisher is not wedged by it: the next request is acknowledged.
        on_time = _request(21, "on-time")
        await asyncio.wait_for(publisher.publish(on_time), 10)
    finally:
        await publisher.stop()
    landed = await _read_all(topics, 1)
    assert {m.booking_id for ms in landed.values() for m in ms} == {on_time.booking_id}


async def test_a_record_carries_the_deadline_its_request_was_answered_by(topics: Settings) -> None:
    """Requests sent in one batch share its first request's deadline, and their records say
    so: the worker drops a record the broker appended after it (the API answered 503)."""
    publisher = Publisher(topics)
    await publisher.start()
    now_ms = int(time.time() * 1000)
    first = _request(31, "first", now_ms=now_ms)
    close = _request(31, "50 ms later", timeout_ms=5050, now_ms=now_ms)
    far = _request(31, "500 ms later", timeout_ms=5500, now_ms=now_ms)
    try:
        await asyncio.gather(*(publisher.publish(m) for m in (first, close, far)))
    finally:
        await publisher.stop()
    landed = {m.booking_id: m for ms in (await _read_all(topics, 3)).values() for m in ms}
    assert landed[first.booking_id].expires_at_ms == first.expires_at_ms
    assert landed[close.booking_id].expires_at_ms == first.expires_at_ms  # its batch's
    assert landed[far.booking_id].expires_at_ms == far.expires_at_ms  # a batch of its own


async def test_stopping_answers_every_waiting_request_and_refuses_new_ones(
    topics: Settings,
) -> None:
    publisher = Publisher(topics)
    await publisher.start()
    # Deadlines 200 ms apart: one batch each, so most are still queued at the stop.
    now_ms = int(time.time() * 1000)
    sent = [_request(41, f"user-{i}", timeout_ms=5000 + 200 * i, now_ms=now_ms) for i in range(30)]
    waiting = [asyncio.create_task(publisher.publish(m)) for m in sent]
    await publisher.stop()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
    assert all(o is None or isinstance(o, BrokerUnavailable) for o in outcomes), outcomes
    assert any(isinstance(o, BrokerUnavailable) for o in outcomes)  # the stop cut some off
    with pytest.raises(BrokerUnavailable):
        await publisher.publish(_request(41, "after stop"))
    # What was acknowledged is in Kafka.
    acked = {m.booking_id for m, o in zip(sent, outcomes, strict=True) if o is None}
    if acked:
        landed = await _read_all(topics, len(acked))
        assert acked <= {m.booking_id for ms in landed.values() for m in ms}
