"""An event's booking rules (capacity, per-user limit, seat layout) and each process's cache
of them.

The API checks every booking against these rules before publishing it, and the worker asks
whether an event exists for every batch; both would otherwise query PostgreSQL each time.
A cached entry is at most `max_age_s` old. Rules do not change after an event is created
today, so staleness is harmless now; the bound keeps it so if they ever can. A layout never
changes once its event exists. The worker
decides against the row it locks, never against this cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shared.db import Pool, queries
from shared.seating import Layout
from shared.venue import load_layout

MAX_AGE_S = 60.0


@dataclass(frozen=True, slots=True)
class EventRules:
    id: int
    name: str
    capacity: int
    per_user_limit: int
    layout: Layout = field(compare=False)
    queue: bool = False  # sold only to buyers the on-sale queue admitted
    queue_pow: int = 0  # joining its queue needs a proof of work this hard (0: none)


class RulesCache:
    def __init__(self, pool: Pool, max_age_s: float = MAX_AGE_S) -> None:
        self._pool = pool
        self._max_age_s = max_age_s
        self._seen: dict[int, tuple[float, EventRules]] = {}

    async def get(self, event_id: int) -> EventRules | None:
        """The event's rules, or None if it does not exist (not cached: it may be created)."""
        seen = self._seen.get(event_id)
        now = time.monotonic()
        if seen is not None and now - seen[0] < self._max_age_s:
            return seen[1]
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(queries.get_event, {"event_id": event_id})
            row = await cur.fetchone()
            layout = None
            if row is not None:
                layout = seen[1].layout if seen else await load_layout(cur, event_id)
        if row is None or layout is None:
            self._seen.pop(event_id, None)
            return None
        rules = EventRules(
            row["id"],
            row["name"],
            row["capacity"],
            row["per_user_limit"],
            layout,
            row["queue"],
            row["queue_pow"],
        )
        self._seen[event_id] = (now, rules)
        return rules
