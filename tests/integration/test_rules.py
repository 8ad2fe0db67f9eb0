"""shared/rules.py: the per-process cache of an event's booking rules, against the real
PostgreSQL. An event that does not exist yet is asked about again; a cached entry is never
older than the cache's max age."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from scripts.waiting import eventually
from shared.config import Settings
from shared.db import Pool, open_pool, queries
from shared.rules import EventRules, RulesCache

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    opened = open_pool(settings, max_size=2)
    await opened.open()
    yield opened
    await opened.close()


def _create_event(settings: Settings, per_user_limit: int) -> int:
    params = {"name": "rules", "capacity": 10, "per_user_limit": per_user_limit, "hold_seconds": 0}
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(queries.create_event, params).fetchone()
    assert row is not None
    return int(row[0])


def _set_limit(settings: Settings, event_id: int, per_user_limit: int) -> None:
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "UPDATE events SET per_user_limit = %s WHERE id = %s", (per_user_limit, event_id)
        )


async def _limit(cache: RulesCache, event_id: int) -> int:
    rules = await cache.get(event_id)
    assert rules is not None, f"no rules for event {event_id}"
    return rules.per_user_limit


async def test_rules_are_read_from_the_event(pool: Pool, settings: Settings) -> None:
    event = _create_event(settings, per_user_limit=3)
    assert await RulesCache(pool).get(event) == EventRules(event, "rules", 10, 3)


async def test_an_unknown_event_is_not_cached(pool: Pool, settings: Settings) -> None:
    """Asked about before it exists (a buyer quicker than the admin), then created."""
    cache = RulesCache(pool)
    assert await cache.get(4242) is None
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "INSERT INTO events (id, name, capacity, per_user_limit)"
            " OVERRIDING SYSTEM VALUE VALUES (4242, 'late', 5, 2)"
        )
    assert await cache.get(4242) == EventRules(4242, "late", 5, 2)


async def test_a_cached_rule_is_at_most_max_age_old(pool: Pool, settings: Settings) -> None:
    event = _create_event(settings, per_user_limit=2)
    lasting, brief = RulesCache(pool, max_age_s=3600), RulesCache(pool, max_age_s=0.2)
    for cache in (lasting, brief):
        assert await _limit(cache, event) == 2

    _set_limit(settings, event, 5)
    # Within its max age a cache answers from memory, not from PostgreSQL...
    assert await _limit(lasting, event) == 2

    # ...and past it, it reads the row again.
    async def renewed() -> bool:
        return await _limit(brief, event) == 5

    await eventually(renewed, "a cache with a 0.2 s max age sees the new limit", timeout_s=10)
    assert await _limit(RulesCache(pool, max_age_s=0), event) == 5
