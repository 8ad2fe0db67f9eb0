"""The booking-events outbox, written by the deciding transaction: one row per state change,
numbered per event (`seq`) under the event's row lock, so the numbers follow the order in
which the changes were committed. consumer/relay.py sends the rows to Kafka afterwards; a
crash between the commit and the relay's send only makes the message late."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncCursor

from shared.contracts import BookingRequested, Decision
from shared.db import queries, text_array, uuid_array


async def write(
    cur: AsyncCursor[Any],
    event_id: int,
    last_seq: int,
    changes: Sequence[tuple[BookingRequested, Decision]],
    at: dt.datetime,
) -> int:
    """Append `changes` (in order) after the event's `last_seq`, in one statement that also
    advances the event's counter; return the new last seq."""
    if not changes:
        return last_seq
    await cur.execute(
        queries.write_booking_events,
        {
            "event_id": event_id,
            "first_seq": last_seq + 1,
            "last_seq": last_seq + len(changes),
            "booking_ids": uuid_array([request.booking_id for request, _ in changes]),
            "statuses": text_array([decision.status.value for _, decision in changes]),
            "at": at,
        },
    )
    return last_seq + len(changes)
