"""The polling cache's batch writes (remember.lua) against a real Redis."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis

from shared.config import Settings
from shared.contracts import BookingRequested, Decision, Reason, Status
from shared.decisions import DecisionCache

pytestmark = pytest.mark.unit


def request(i: int) -> BookingRequested:
    return BookingRequested(uuid.uuid4(), 7, f"user-{i}", 1, int(time.time() * 1000))


async def test_pending_never_hides_a_decision_and_decisions_replace_pending(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    cache = DecisionCache(redis_client, settings.redis_prefix, ttl_s=60)
    early, late = request(1), request(2)
    now_ms = int(time.time() * 1000)
    # A fast worker decided `early` before the API wrote its PENDING record.
    await cache.remember_decisions(
        [(early, Decision(early.booking_id, Status.CONFIRMED, None, ("R1-1",), now_ms))]
    )
    await cache.remember_requests([early, late])

    first = await cache.get(early.booking_id)
    assert first is not None
    assert (first.status, first.seats) == ("CONFIRMED", ["R1-1"])
    pending = await cache.get(late.booking_id)
    assert pending is not None and pending.status == "PENDING"

    decision = Decision(late.booking_id, Status.REJECTED, Reason.SOLD_OUT, (), now_ms)
    await cache.remember_decisions([(late, decision)])
    decided = await cache.get(late.booking_id)
    assert decided is not None
    assert (decided.status, decided.reason, decided.user_id) == ("REJECTED", "SOLD_OUT", "user-2")
    assert decided.decided_at is not None


async def test_a_batch_of_records_is_written_whole_with_its_ttl(
    redis_client: aioredis.Redis, settings: Settings
) -> None:
    cache = DecisionCache(redis_client, settings.redis_prefix, ttl_s=60)
    batch = [request(i) for i in range(2_000)]
    await cache.remember_requests(batch)
    views = [await cache.get(r.booking_id) for r in batch[::250]]
    assert [v.status if v else None for v in views] == ["PENDING"] * 8
    keys = [k async for k in redis_client.scan_iter(match=f"{settings.redis_prefix}:*")]
    assert len(keys) == 2_000
    ttls = {await redis_client.ttl(k) for k in keys[:50]}
    assert all(0 < ttl <= 60 for ttl in ttls)
