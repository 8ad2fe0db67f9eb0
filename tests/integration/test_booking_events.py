"""The booking-events outbox and its relay, against a real PostgreSQL, Redis and Kafka: one
message per state change, numbered per event in commit order, published in that order, valid
against the published JSON Schema."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import uuid
from collections.abc import AsyncIterator

import jsonschema
import pytest
from aiokafka import AIOKafkaProducer

from consumer.backoff import Backoff
from consumer.relay import Relay
from scripts.waiting import eventually
from shared.config import Settings
from tests.booking_events import published
from tests.integration.ledger import Ledger, cancel, payment, request

pytestmark = pytest.mark.integration

SCHEMA = json.loads(
    (pathlib.Path(__file__).parents[2] / "docs" / "booking-events.schema.json").read_text()
)


def outbox(ledger: Ledger, event_id: int) -> list[tuple[int, uuid.UUID, str]]:
    return [
        (seq, booking_id, status)
        for seq, booking_id, status in ledger.rows(
            "SELECT seq, booking_id, status FROM booking_events WHERE event_id = %s ORDER BY seq",
            event_id,
        )
    ]


@contextlib.asynccontextmanager
async def running_relay(settings: Settings) -> AsyncIterator[Relay]:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    stop = asyncio.Event()
    relay = Relay(settings, producer, Backoff(stop, 1.0))
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await producer.stop()


async def test_every_state_change_is_one_outbox_row_in_commit_order(ledger: Ledger) -> None:
    event = await ledger.event(capacity=3, hold_seconds=600)
    a, b, c = request(event, "a", 2), request(event, "b"), request(event, "c")
    await ledger.finalizer.apply([a, b, c])
    # Paid and cancelled in one batch: CONFIRMED, then CANCELLED.
    await ledger.finalizer.apply([payment(event, a.booking_id, "p-1"), cancel(event, a.booking_id)])
    ledger.run_out([b.booking_id])
    await ledger.finalizer.apply([], expire=[event])
    # Redelivered commands change nothing, so they add nothing.
    await ledger.finalizer.apply([a, b, c, payment(event, a.booking_id, "p-1")])

    assert outbox(ledger, event) == [
        (1, a.booking_id, "HELD"),
        (2, b.booking_id, "HELD"),
        (3, c.booking_id, "REJECTED"),
        (4, a.booking_id, "CONFIRMED"),
        (5, a.booking_id, "CANCELLED"),
        (6, b.booking_id, "EXPIRED"),
    ]
    assert ledger.rows("SELECT event_seq FROM events WHERE id = %s", event) == [(6,)]


async def test_the_relay_publishes_the_outbox_in_order_and_marks_it_relayed(ledger: Ledger) -> None:
    event = await ledger.event(capacity=50)
    requests = [request(event, f"u{n}", 1 + n % 3) for n in range(40)]
    await ledger.finalizer.apply(requests[:20])
    await ledger.finalizer.apply(requests[20:])
    rows = outbox(ledger, event)
    assert len(rows) == 40

    async with running_relay(ledger.settings):
        messages = await published(ledger.settings, event, 40)

        async def all_marked() -> bool | None:
            relayed = ledger.rows(
                "SELECT seq FROM booking_events_relayed WHERE event_id = %s", event
            )
            return True if relayed == [(40,)] else None

        await eventually(all_marked, "the event marked relayed up to its last seq", 10)

    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for message in messages:
        validator.validate(message)
    assert [(m["seq"], uuid.UUID(str(m["booking_id"])), m["status"]) for m in messages] == rows
    confirmed = [m for m in messages if m["status"] == "CONFIRMED"]
    assert sum(int(str(m["quantity"])) for m in confirmed) == 50  # the whole event sold
    assert all(len(m["seats"]) == m["quantity"] for m in confirmed)


async def test_a_message_the_schema_forbids_is_refused_by_it() -> None:
    """The schema is strict enough to catch a change of the message: it can fail."""
    bad = {"event_id": 1, "seq": 0, "booking_id": "x", "status": "PENDING"}
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert len(list(validator.iter_errors(bad))) >= 3


async def test_only_one_relay_sends_at_a_time(ledger: Ledger) -> None:
    event = await ledger.event(capacity=5)
    async with running_relay(ledger.settings) as first, running_relay(ledger.settings) as second:
        await ledger.finalizer.apply([request(event, f"u{n}") for n in range(5)])
        messages = await published(ledger.settings, event, 5)

        async def counted() -> bool | None:
            return True if first.relayed + second.relayed == 5 else None

        await eventually(counted, "the relays' counts", 10)
    assert sorted([first.relayed, second.relayed]) == [0, 5]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
