"""The whole pipeline as real processes: API -> Kafka -> worker -> Redis -> PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from scripts.pipeline import Pipeline
from shared.contracts import BookingRequested, encode_command, event_key
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


async def test_500_buyers_for_100_seats(sale: SaleClient, pipeline: Pipeline) -> None:
    event = await sale.create_event(capacity=100, per_user_limit=1)
    responses = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(500)))
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {202, 409}, codes
    accepted = [r.json()["booking_id"] for r in responses if r.status_code == 202]
    assert all(r.json()["reason"] == "SOLD_OUT" for r in responses if r.status_code == 409)

    decided = await sale.wait_decided(accepted)
    outcome = Counter((b["status"], b["reason"]) for b in decided.values())
    assert outcome[("CONFIRMED", None)] == 100
    assert outcome[("REJECTED", "SOLD_OUT")] + codes[409] == 400
    seats = [seat for b in decided.values() for seat in b["seats"]]
    assert len(seats) == len(set(seats)) == 100

    report = await sale.wait_clean(event)
    assert report["verdict"] == "CLEAN", report
    assert (report["sold"], report["capacity"], report["redis_available"]) == (100, 100, 0)
    assert report["confirmed_bookings"] == 100
    event_view = (await sale.http.get(f"/api/events/{event}")).json()
    assert (event_view["sold"], event_view["available"]) == (100, 0)


async def test_random_quantities_and_limits(sale: SaleClient, pipeline: Pipeline) -> None:
    rng = random.Random(7)
    capacity, limit = 200, 4
    event = await sale.create_event(capacity=capacity, per_user_limit=limit)
    users = [f"buyer-{i}" for i in range(120)]
    asks: list[tuple[str, int]] = []
    while sum(q for _, q in asks) < 5 * capacity:
        asks.append((rng.choice(users), rng.randint(1, 4)))
    responses = await asyncio.gather(*(sale.book(event, u, q) for u, q in asks))
    accepted = [r.json()["booking_id"] for r in responses if r.status_code == 202]
    assert all(r.status_code in (202, 409) for r in responses)

    decided = await sale.wait_decided(accepted)
    confirmed = [b for b in decided.values() if b["status"] == "CONFIRMED"]
    assert sum(b["quantity"] for b in confirmed) == capacity
    per_user = Counter[str]()
    for b in confirmed:
        per_user[b["user_id"]] += b["quantity"]
        assert len(b["seats"]) == b["quantity"]
    assert max(per_user.values()) <= limit
    reasons = Counter(b["reason"] for b in decided.values() if b["status"] == "REJECTED")
    assert set(reasons) <= {"SOLD_OUT", "LIMIT_EXCEEDED"}
    assert reasons["LIMIT_EXCEEDED"] > 0
    seats = [s for b in confirmed for s in b["seats"]]
    assert len(seats) == len(set(seats)) == capacity
    assert (await sale.wait_clean(event))["verdict"] == "CLEAN"


async def test_idempotency_key(sale: SaleClient, pipeline: Pipeline) -> None:
    event = await sale.create_event(capacity=10)
    first = await sale.book(event, "alice", 2, key="order-1")
    assert first.status_code == 202
    booking_id = first.json()["booking_id"]
    again = await asyncio.gather(*(sale.book(event, "alice", 2, key="order-1") for _ in range(20)))
    assert {r.status_code for r in again} == {202}
    assert {r.json()["booking_id"] for r in again} == {booking_id}

    concurrent = await asyncio.gather(*(sale.book(event, "bob", 1, key="k") for _ in range(20)))
    assert {r.status_code for r in concurrent} == {202}
    assert len({r.json()["booking_id"] for r in concurrent}) == 1

    changed = await sale.book(event, "alice", 3, key="order-1")
    assert changed.status_code == 422
    assert changed.headers["content-type"].startswith("application/problem+json")
    other_user = await sale.book(event, "carol", 2, key="order-1")  # keys are per user
    assert other_user.status_code == 202
    assert other_user.json()["booking_id"] != booking_id

    ids = [booking_id, concurrent[0].json()["booking_id"], other_user.json()["booking_id"]]
    await sale.wait_decided(ids)
    report = await sale.wait_clean(event)
    assert (report["confirmed_bookings"], report["sold"], report["verdict"]) == (3, 5, "CLEAN")


async def test_seed_compatible_aliases(sale: SaleClient, pipeline: Pipeline) -> None:
    event = await sale.create_event(capacity=2)
    accepted = await sale.http.post(f"/api/bookings?eventId={event}&userId=101")
    assert accepted.status_code == 202
    assert accepted.headers["location"] == accepted.json()["status_url"]
    decided = await sale.wait_decided([accepted.json()["booking_id"]])
    assert next(iter(decided.values()))["user_id"] == "101"
    remaining = await sale.http.get(f"/api/bookings/status?eventId={event}")
    assert remaining.json() == {"event_id": event, "remaining": 1}
    audit = await sale.http.get(f"/api/bookings/audit?eventId={event}", headers=sale.admin)
    assert audit.json()["verdict"] == "CLEAN"
    assert (await sale.http.get(f"/api/bookings/audit?eventId={event}")).status_code == 401


async def test_poison_message_goes_to_dead_letter_and_the_worker_goes_on(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    settings = pipeline.settings
    event = await sale.create_event(capacity=10)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        key = str(event).encode()
        await producer.send_and_wait(settings.topic, b"\x00garbage{", key=key)
        await producer.send_and_wait(
            settings.topic,
            b'{"type":"booking.v1","booking_id":"5f0c1c1e-0000-4000-8000-000000000001",'
            b'"event_id":' + key + b',"user_id":"x","quantity":0,"requested_at_ms":1}',
            key=key,
        )
    finally:
        await producer.stop()
    behind = [await sale.book(event, f"after-{i}") for i in range(3)]
    decided = await sale.wait_decided([r.json()["booking_id"] for r in behind])
    assert {b["status"] for b in decided.values()} == {"CONFIRMED"}

    invalid = await sale.wait_decided(["5f0c1c1e-0000-4000-8000-000000000001"])
    assert next(iter(invalid.values()))["reason"] == "INVALID"

    consumer = AIOKafkaConsumer(
        settings.dlq_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=f"{settings.consumer_group}-dlq-reader",
    )
    await consumer.start()
    try:
        parked: list[ConsumerRecord[bytes, bytes]] = []
        while len(parked) < 2:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "dead-letter topic stayed empty"
            parked += [r for records in batch.values() for r in records]
    finally:
        await consumer.stop()
    assert parked[0].value == b"\x00garbage{"
    reasons = [dict(r.headers)["reason"].decode() for r in parked]
    assert reasons[0].startswith("undecodable")
    assert "quantity" in reasons[1]
    assert (await sale.wait_clean(event))["verdict"] == "CLEAN"


async def test_a_request_kafka_appends_after_the_api_gave_up_takes_no_seat(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    """The API answers 503 once its deadline passes, but an idempotent producer may still
    deliver the message later (when the broker returns). The worker must drop it."""
    settings = pipeline.settings
    event = await sale.create_event(capacity=2)
    now_ms = int(time.time() * 1000)
    late = BookingRequested(uuid.uuid4(), event, "ghost", 1, now_ms - 10_000, now_ms - 5_000)
    on_time = BookingRequested(uuid.uuid4(), event, "buyer", 1, now_ms, now_ms + 60_000)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for message in (late, on_time):
            await producer.send_and_wait(
                settings.topic, encode_command(message), key=event_key(event)
            )
    finally:
        await producer.stop()
    # Same partition, in order: once the later message is decided, the late one was seen.
    decided = await sale.wait_decided([str(on_time.booking_id)], unknown_ok=True)
    buyer = decided[str(on_time.booking_id)]
    assert (buyer["status"], buyer["seats"]) == ("CONFIRMED", ["R1-1"])
    ghost = await sale.http.get(f"/api/bookings/{late.booking_id}")
    assert ghost.status_code == 404  # dropped: never decided, never a seat
    report = await sale.wait_clean(event)
    assert (report["sold"], report["redis_available"], report["verdict"]) == (1, 1, "CLEAN")
