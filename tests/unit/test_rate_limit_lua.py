"""The GCRA script against a real Redis: bursts, refusals that use up nothing, batching."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from api.rate_limit import Limit, RateLimiter
from shared.config import Settings
from shared.errors import RateLimited
from shared.keys import RedisKeys

pytestmark = pytest.mark.unit

SLOW = 0.001  # per second: nothing comes back within a test


@pytest.fixture
def limiter(redis_client: aioredis.Redis, settings: Settings) -> RateLimiter:
    return RateLimiter(redis_client, RedisKeys(settings.redis_prefix))


async def passed(limiter: RateLimiter, *checks: tuple[Limit, str]) -> bool:
    try:
        await limiter.admit(*checks)
    except RateLimited:
        return False
    return True


async def test_a_burst_then_refusals(limiter: RateLimiter) -> None:
    buyer = Limit("buyer", SLOW, 3)
    assert [await passed(limiter, (buyer, "b1")) for _ in range(5)] == [True] * 3 + [False] * 2
    assert await passed(limiter, (buyer, "b2"))  # each subject has its own


async def test_a_request_refused_by_one_limit_uses_up_none(limiter: RateLimiter) -> None:
    buyer, address = Limit("buyer", SLOW, 3), Limit("addr", SLOW, 1)
    assert await passed(limiter, (buyer, "b"), (address, "1.2.3.4"))
    assert not await passed(limiter, (buyer, "b"), (address, "1.2.3.4"))
    # The buyer's second request above was refused by the address: two are left, not one.
    assert [await passed(limiter, (buyer, "b"), (address, f"5.6.7.{i}")) for i in range(3)] == [
        True,
        True,
        False,
    ]


async def test_the_refusal_says_when_to_come_back(limiter: RateLimiter) -> None:
    buyer = Limit("buyer", 0.5, 2)  # one request every 2 s, two at once
    await limiter.admit((buyer, "b"))
    await limiter.admit((buyer, "b"))
    with pytest.raises(RateLimited) as refused:
        await limiter.admit((buyer, "b"))
    assert refused.value.limit == 2
    assert refused.value.retry_after_s == 2
    assert refused.value.reset_s in (3, 4)


async def test_concurrent_requests_share_round_trips_and_the_limit(limiter: RateLimiter) -> None:
    buyer = Limit("buyer", SLOW, 50)
    results = await asyncio.gather(*(passed(limiter, (buyer, "crowd")) for _ in range(200)))
    assert results.count(True) == 50


async def test_a_limit_that_is_off_is_never_asked(limiter: RateLimiter) -> None:
    off = Limit("buyer", 0.0, 1)
    assert all([await passed(limiter, (off, "b")) for _ in range(10)])
