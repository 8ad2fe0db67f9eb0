"""The reconciler against real PostgreSQL, Redis and Kafka."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from consumer.reconcile import Reconciler
from shared.audit import Verdict
from shared.inventory import Ask
from tests.integration.ledger import Ledger, request

pytestmark = pytest.mark.integration


def reconciler(ledger: Ledger) -> Reconciler:
    return Reconciler(ledger.settings, ledger.pool, ledger.finalizer, ledger.inventory)


async def unsettle(ledger: Ledger, event: int, booking: Ask, *, refused: bool) -> None:
    """Put back the gate state of a worker that died after COMMIT, before settle.lua."""
    avail, _users, holds, held, *_ = ledger.inventory.keys(event)
    redis_client = ledger.inventory._redis
    await redis_client.hset(holds, str(booking.booking_id), f"{booking.quantity}|{booking.user_id}")
    await redis_client.incrby(held, booking.quantity)
    if refused:
        await redis_client.decrby(avail, booking.quantity)


async def test_settles_holds_of_bookings_postgres_decided(ledger: Ledger) -> None:
    event = await ledger.event(capacity=2)
    batch = [request(event, "a", 2), request(event, "b", 1)]
    await ledger.finalizer.finalize(batch)
    for r, refused in zip(batch, (False, True), strict=True):
        await unsettle(ledger, event, Ask(r.booking_id, r.user_id, r.quantity), refused=refused)
    assert await ledger.audit(event) is Verdict.IN_FLIGHT

    fixes = await reconciler(ledger).run()
    assert (fixes.holds_settled, fixes.holds_released) == (2, 0)
    assert await ledger.inventory.available(event) == 0
    assert await ledger.audit(event) is Verdict.CLEAN
    assert (await reconciler(ledger).run()).total == 0  # nothing left to fix


async def test_releases_orphan_holds_once_the_group_caught_up(ledger: Ledger) -> None:
    event = await ledger.event(capacity=5)
    orphan = request(event, "ghost", 3)
    await ledger.inventory.reserve(event, 10, [Ask(orphan.booking_id, "ghost", 3)])
    fixes = await reconciler(ledger).run()
    assert fixes.group_caught_up
    assert fixes.holds_released == 1
    assert await ledger.inventory.available(event) == 5
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_keeps_orphans_while_messages_are_unconsumed(ledger: Ledger) -> None:
    event = await ledger.event(capacity=5)
    orphan = request(event, "ghost", 3)
    await ledger.inventory.reserve(event, 10, [Ask(orphan.booking_id, "ghost", 3)])
    producer = AIOKafkaProducer(bootstrap_servers=ledger.settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(ledger.settings.topic, b"not consumed yet")
    finally:
        await producer.stop()
    fixes = await reconciler(ledger).run()
    assert not fixes.group_caught_up
    assert fixes.holds_released == 0
    assert await ledger.inventory.available(event) == 2


async def test_rebuilds_missing_and_corrects_drifted_counters(ledger: Ledger) -> None:
    lost, drifted = await ledger.event(capacity=4), await ledger.event(capacity=4)
    await ledger.finalizer.finalize([request(lost, "a", 1), request(drifted, "a", 1)])
    await ledger.inventory._redis.delete(*ledger.inventory.keys(lost))
    await ledger.inventory._redis.set(ledger.inventory.keys(drifted)[0], 9)
    assert await ledger.audit(lost) is Verdict.DRIFT
    assert await ledger.audit(drifted) is Verdict.DRIFT

    fixes = await reconciler(ledger).run()
    assert (fixes.counters_rebuilt, fixes.counters_corrected) == (1, 1)
    assert await ledger.inventory.available(lost) == 3
    assert await ledger.inventory.available(drifted) == 3
    assert await ledger.audit(lost) is Verdict.CLEAN
    assert await ledger.audit(drifted) is Verdict.CLEAN
