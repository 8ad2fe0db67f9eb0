"""The worker's audit side task against real PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from consumer.auditor import Auditor, assigned_events
from shared.audit import Verdict
from shared.contracts import partition_of
from tests.integration.ledger import Ledger, request

pytestmark = pytest.mark.integration


def gauge(verdict: str) -> float | None:
    return REGISTRY.get_sample_value("tickets_audit_events", {"verdict": verdict})


async def test_counts_recent_events_by_verdict(ledger: Ledger) -> None:
    clean, drifted = await ledger.event(capacity=3), await ledger.event(capacity=3)
    await ledger.finalizer.finalize([request(clean, "a"), request(drifted, "b")])
    await ledger.inventory._redis.set(ledger.inventory.keys(drifted)[0], 7)
    auditor = Auditor(ledger.pool, ledger.inventory, interval_s=60)
    auditor.saw([clean, drifted])

    counts = await auditor.audit_recent()
    assert counts[Verdict.CLEAN] == 1
    assert counts[Verdict.DRIFT] == 1
    assert counts[Verdict.OVERSOLD] == 0
    assert gauge("DRIFT") == 1
    assert gauge("CLEAN") == 1


async def test_only_events_of_partitions_held_now_are_counted(ledger: Ledger) -> None:
    """After a rebalance another worker audits the events of a revoked partition: this one
    drops them, so the held seats summed over workers are not counted twice."""
    s = ledger.settings
    partitions = range(s.topic_partitions)
    mine = await ledger.event(capacity=5, hold_seconds=300)
    theirs = await ledger.event(capacity=5, hold_seconds=300)
    while partition_of(theirs, partitions) == partition_of(mine, partitions):
        theirs = await ledger.event(capacity=5, hold_seconds=300)
    await ledger.finalizer.finalize([request(mine, "a", 2), request(theirs, "b", 3)])

    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers)
    await consumer.start()
    try:
        await consumer.topics()  # the topic's partitions, as a member of the group knows them
        consumer.assign([TopicPartition(s.topic, p) for p in partitions])
        auditor = Auditor(ledger.pool, ledger.inventory, 60, assigned_events(consumer, s.topic))
        auditor.saw([mine, theirs])
        assert sum((await auditor.audit_recent()).values()) == 2
        assert REGISTRY.get_sample_value("tickets_held_seats") == 5

        # The partition of `theirs` is revoked: from the next round on it is not counted.
        consumer.assign([TopicPartition(s.topic, partition_of(mine, partitions))])
        assert (await auditor.audit_recent())[Verdict.CLEAN] == 1
        assert REGISTRY.get_sample_value("tickets_held_seats") == 2
    finally:
        await consumer.stop()
