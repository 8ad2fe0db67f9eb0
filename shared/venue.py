"""An event's seats in the ledger: creating an event with its sections and every seat in one
transaction, and reading its layout back."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncCursor

from shared.db import queries
from shared.seating import Layout, Section

# Binary COPY: a million seats in seconds, each label written by shared/seating.py's rule.
COPY_SEATS = "COPY seats (event_id, seat_no, label) FROM STDIN (FORMAT BINARY)"


@dataclass(frozen=True, slots=True)
class OnSale:
    """When and how an event goes on sale: through the waiting room when `queue`
    (shared/queue.py), which opens at `opens_at` (None: at once; without a queue nothing
    enforces it, so the API accepts it only with one), each joiner first solving a proof of
    work of `pow` (ALTCHA's largest number; 0: none)."""

    opens_at: dt.datetime | None = None
    queue: bool = False
    pow: int = 0


async def create_event(
    cur: AsyncCursor[Any],
    name: str,
    per_user_limit: int,
    hold_seconds: int,
    layout: Layout,
    sale: OnSale = OnSale(),
) -> dict[str, Any]:
    """The event row (capacity: the layout's), its sections and its seats, all free. The
    caller owns the transaction. Returns the event row."""
    await cur.execute(
        queries.create_event,
        {
            "name": name,
            "capacity": layout.capacity,
            "per_user_limit": per_user_limit,
            "hold_seconds": hold_seconds,
            "opens_at": sale.opens_at,
            "queue": sale.queue,
            "queue_pow": sale.pow,
        },
    )
    event = await cur.fetchone()
    assert event is not None
    event_id = event["id"]
    for position, section in enumerate(layout.sections):
        await cur.execute(
            queries.create_section,
            {
                "event_id": event_id,
                "position": position,
                "name": section.name,
                "rows": section.rows,
                "seats_per_row": section.seats_per_row,
                "seats": section.seats,
                "first_seat": section.first_seat,
                "price_cents": section.price_cents,
            },
        )
    # Each seat's foreign-key check is a cached plan; the pool's force_custom_plan would
    # plan every one of them again (twice the time for a million seats).
    await cur.execute("SET LOCAL plan_cache_mode = auto")
    async with cur.copy(COPY_SEATS) as copy:
        copy.set_types(["int8", "int4", "text"])
        for seat_no, label in layout.labelled():
            await copy.write_row((event_id, seat_no, label))
    return dict(event)


async def load_layout(cur: AsyncCursor[Any], event_id: int) -> Layout | None:
    """The event's sections, or None when it has none (it does not exist)."""
    await cur.execute(queries.event_sections, {"event_id": event_id})
    rows = await cur.fetchall()
    if not rows:
        return None
    return Layout([Section(**row) for row in rows])
