"""The gate across a Redis failover that lost writes: Sentinel promotes a replica that missed
the primary's last writes (replication is asynchronous), so the gate comes back stale, not
missing. The finalizer must notice the new primary and rebuild the gate from PostgreSQL:
no oversell, no user above the limit, the counter equal to the ledger (audit CLEAN), with
no reconciler. Real processes: a primary, a replica and three Sentinels of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.audit import Verdict
from shared.config import Settings
from shared.contracts import Reason, Status
from shared.redis_clients import open_redis
from tests.integration.ledger import Ledger, request
from tests.integration.redis_sentinel import SentinelRedis


@pytest.fixture
async def failover(tmp_path: Path) -> AsyncIterator[SentinelRedis]:
    redis = SentinelRedis(tmp_path)
    try:
        await redis.start()
        yield redis
    finally:
        redis.stop()


@pytest.fixture
async def ledger_ha(settings: Settings, failover: SentinelRedis) -> AsyncIterator[Ledger]:
    through_sentinel = failover.settings(settings)
    client = open_redis(through_sentinel)
    it = Ledger(through_sentinel, client)
    await it.pool.open()
    yield it
    await it.pool.close()
    await client.aclose()


async def lose_last_writes(ledger: Ledger, failover: SentinelRedis, event: int) -> None:
    """Sell 5 seats (user a gets 2 more) on the primary while the replica is cut off, then
    fail over to that replica: its gate is the one from before those sales."""
    assert await failover.replicated()
    before = await ledger.inventory.available(event)
    await failover.cut_replica()
    decided = await ledger.finalizer.finalize([request(event, "c", 3), request(event, "a", 2)])
    assert [d.status for d in decided] == [Status.CONFIRMED, Status.CONFIRMED]
    failover.kill_primary()
    assert await failover.promoted(), "Sentinel did not promote the replica"
    stale = await ledger.inventory.available(event)
    assert stale == before, f"the promoted replica should lack the last writes: {stale}"


async def test_a_batch_after_a_lossy_failover_rebuilds_the_gate(
    ledger_ha: Ledger, failover: SentinelRedis
) -> None:
    ledger = ledger_ha
    event = await ledger.event(capacity=10, limit=4)
    await ledger.finalizer.finalize([request(event, "a", 2), request(event, "b", 2)])
    await lose_last_writes(ledger, failover, event)

    # 1 seat is left and a has 4: the stale gate would admit both, and then disagree with
    # the ledger (PostgreSQL refuses them itself: the counter would drift, not oversell).
    d, a, b = await ledger.finalizer.finalize(
        [request(event, "d", 2), request(event, "a", 1), request(event, "b", 1)]
    )
    assert (d.status, d.reason) == (Status.REJECTED, Reason.SOLD_OUT)
    assert (a.status, a.reason) == (Status.REJECTED, Reason.LIMIT_EXCEEDED)
    assert b.status == Status.CONFIRMED
    report = await ledger.report(event)
    assert (report.sold, report.redis_available) == (10, 0), report
    assert report.verdict == Verdict.CLEAN, report


async def test_an_idle_event_is_rebuilt_after_a_lossy_failover(
    ledger_ha: Ledger, failover: SentinelRedis
) -> None:
    ledger = ledger_ha
    event = await ledger.event(capacity=10, limit=4)
    await ledger.finalizer.finalize([request(event, "a", 2)])
    await lose_last_writes(ledger, failover, event)
    assert await ledger.audit(event) == Verdict.DRIFT  # the stale counter, as promoted

    # No command comes for the event: the worker's periodic check rebuilds it anyway.
    assert await ledger.finalizer.rebuild_stale_gates() == 1
    report = await ledger.report(event)
    assert (report.sold, report.redis_available) == (7, 3), report
    assert report.verdict == Verdict.CLEAN, report
    assert await ledger.finalizer.rebuild_stale_gates() == 0
