"""A backlog with a poison message at its end, for the operator tools' tests: the worker
stopped, five bookings accepted and waiting in Kafka, then a message that does not decode in
the same partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from scripts.pipeline import Pipeline
from shared.contracts import event_key
from tests.sale import SaleClient


async def backlog_with_poison(
    sale: SaleClient, pipeline: Pipeline, poison_of: Callable[[list[str]], bytes]
) -> tuple[int, list[str]]:
    """(the event, its five booking ids); `poison_of(ids)` is the poison message's value."""
    event = await sale.create_event(capacity=10, per_user_limit=1)
    await asyncio.to_thread(Pipeline.terminate, pipeline.workers[0])
    booked = [await sale.book(event, f"user-{i}") for i in range(5)]
    assert [r.status_code for r in booked] == [202] * 5
    ids = [r.json()["booking_id"] for r in booked]
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(pipeline.settings.topic, poison_of(ids), key=event_key(event))
    finally:
        await producer.stop()
    return event, ids
