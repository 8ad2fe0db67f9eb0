"""shared/rules.py: the per-process cache of an event's booking rules, against the real
PostgreSQL. An event that does not exist yet is asked about again; a cached entry is never
older than the cache's max age."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from scripts.waiting import eventually
from shared.config import Settings
from shared.db import Pool, open_pool
from shared.rules import EventRules, RulesCache
from shared.seating import Layout
from shared.venue import create_event

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    opened = open_pool(settings, max_size=2)
    await opened.open()
    yield opened
    await opened.close()


async def _create_event(pool: Pool, per_user_limit: int, name: str = "rules") -> int:
    layout = Layout.general_admission(10)
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        row = await create_event(cur, name, per_user_limit, 0, layout)
    return int(row["id"])


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
    event = await _create_event(pool, per_user_limit=3)
    rules = await RulesCache(pool).get(event)
    assert rules == EventRules(event, "rules", 10, 3, Layout.general_admission(10))
    assert rules is not None and [s.name for s in rules.layout.sections] == ["GA"]


async def test_an_unknown_event_is_not_cached(pool: Pool, settings: Settings) -> None:
    """Asked about before it exists (a buyer quicker than the admin), then created."""
    cache = RulesCache(pool)
    event = await _create_event(pool, per_user_limit=2, name="early")
    assert await cache.get(event + 1) is None
    late = await _create_event(pool, per_user_limit=2, name="late")
    assert late == event + 1
    assert await cache.get(late) == EventRules(late, "late", 10, 2, Layout.general_admission(10))


async def test_a_cached_rule_is_at_most_max_age_old(pool: Pool, settings: Settings) -> None:
    event = await _create_event(pool, per_user_limit=2)
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
