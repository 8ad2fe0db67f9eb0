"""The gate's Lua scripts against a real Redis: atomic, idempotent per booking id."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from shared.config import Settings
from shared.errors import CounterMissing
from shared.inventory import Ask, Gate, Inventory

pytestmark = pytest.mark.unit


def ask(user: str, quantity: int = 1) -> Ask:
    return Ask(uuid.uuid4(), user, quantity)


@pytest.fixture
def inventory(redis_client: aioredis.Redis, settings: Settings) -> Inventory:
    return Inventory(redis_client, settings.redis_prefix)


async def test_reserve_takes_stock_in_order_until_sold_out(inventory: Inventory) -> None:
    await inventory.open(1, 3)
    asks = [ask("a", 2), ask("b", 2), ask("c", 1), ask("d", 1)]
    gates = await inventory.reserve(1, 10, asks)
    assert gates == [Gate.HELD_NOW, Gate.SOLD_OUT, Gate.HELD_NOW, Gate.SOLD_OUT]
    snap = await inventory.snapshot(1)
    assert (snap.available, snap.held, snap.holds) == (0, 3, 2)


async def test_replayed_booking_takes_nothing_twice(inventory: Inventory) -> None:
    await inventory.open(1, 5)
    first = ask("a", 2)
    assert await inventory.reserve(1, 10, [first]) == [Gate.HELD_NOW]
    assert await inventory.reserve(1, 10, [first]) == [Gate.HELD_BEFORE]
    assert await inventory.available(1) == 3


async def test_per_user_limit_counts_across_bookings(inventory: Inventory) -> None:
    await inventory.open(1, 100)
    gates = await inventory.reserve(1, 3, [ask("a", 2), ask("a", 2), ask("a", 1), ask("b", 3)])
    assert gates == [Gate.HELD_NOW, Gate.LIMIT, Gate.HELD_NOW, Gate.HELD_NOW]
    assert await inventory.available(1) == 94


async def test_settle_releases_refused_holds_exactly_once(inventory: Inventory) -> None:
    await inventory.open(1, 4)
    kept, refused = ask("a", 1), ask("b", 2)
    await inventory.reserve(1, 10, [kept, refused])
    outcomes = [(kept.booking_id, True), (refused.booking_id, False)]
    assert await inventory.settle(1, outcomes) == 2
    assert await inventory.settle(1, outcomes) == 0  # a replayed settle changes nothing
    snap = await inventory.snapshot(1)
    assert (snap.available, snap.held, snap.holds) == (3, 0, 0)
    # b's quantity no longer counts against b's limit
    assert await inventory.reserve(1, 2, [ask("b", 2)]) == [Gate.HELD_NOW]


async def test_missing_counter_refuses_until_rebuilt(inventory: Inventory) -> None:
    with pytest.raises(CounterMissing):
        await inventory.reserve(7, 10, [ask("a")])
    assert await inventory.available(7) is None
    assert await inventory.rebuild(7, 2, {"a": 3}, []) is True
    assert await inventory.rebuild(7, 99, {}, []) is False  # someone else rebuilt already
    gates = await inventory.reserve(7, 4, [ask("a", 2), ask("b", 2), ask("c", 1)])
    assert gates == [Gate.LIMIT, Gate.HELD_NOW, Gate.SOLD_OUT]


async def test_event_keys_share_one_cluster_slot(inventory: Inventory) -> None:
    keys = inventory.keys(42)
    assert all("{ev:42}" in key for key in keys)
    assert len(set(keys)) == len(keys) == 7


async def test_a_booking_twice_in_one_call_is_held_once(inventory: Inventory) -> None:
    await inventory.open(1, 5)
    twice = ask("a", 2)
    assert await inventory.reserve(1, 10, [twice, twice]) == [Gate.HELD_NOW, Gate.HELD_BEFORE]
    assert await inventory.settle(1, [(twice.booking_id, False)] * 2) == 2
    snap = await inventory.snapshot(1)
    assert (snap.available, snap.held, snap.holds) == (5, 0, 0)


async def test_batches_larger_than_the_scripts_chunks(inventory: Inventory) -> None:
    """The scripts read and write in chunks of 1,000: a batch of 2,500 crosses two bounds."""
    await inventory.open(1, 2_400)
    asks = [ask(f"u{i}") for i in range(2_500)]
    gates = await inventory.reserve(1, 1, asks)
    assert gates == [Gate.HELD_NOW] * 2_400 + [Gate.SOLD_OUT] * 100
    again = await inventory.reserve(1, 1, [*asks[:1_500], ask("u7")])
    assert again == [Gate.HELD_BEFORE] * 1_500 + [Gate.LIMIT]  # u7 already holds its one
    # PostgreSQL confirmed the first 2,000 and refused the next 400.
    outcomes = [(a.booking_id, i < 2_000) for i, a in enumerate(asks[:2_400])]
    assert await inventory.settle(1, outcomes) == 400
    snap = await inventory.snapshot(1)
    assert (snap.available, snap.held, snap.holds) == (400, 0, 0)
    assert await inventory.reserve(1, 1, [ask("u2100"), ask("u1")]) == [
        Gate.HELD_NOW,  # u2100 was refused, so its limit is free again
        Gate.LIMIT,
    ]
