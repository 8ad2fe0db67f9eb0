"""Booking requests the API answered 503 for although Kafka may still deliver them: marked in
the ledger by the API, dropped by the worker (rule 4 and 6 of docs/deadlines.md). The marks
live in PostgreSQL, not Redis: a Redis that loses its data (a wipe, a failover that lost
writes) would let such a request take a seat."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared.db import Pool, queries, uuid_array


async def abandon(pool: Pool, booking_ids: Sequence[uuid.UUID]) -> list[None]:
    """Mark these requests answered 503 (a mark twice is one mark)."""
    if booking_ids:
        async with pool.connection() as conn:
            await conn.execute(queries.abandon_requests, {"booking_ids": uuid_array(booking_ids)})
    return [None] * len(booking_ids)


async def abandoned_among(pool: Pool, booking_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The requests among these that the API answered 503 for: one round trip, one index
    probe per id."""
    if not booking_ids:
        return set()
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(queries.abandoned_among, {"booking_ids": uuid_array(booking_ids)})
        return {row["booking_id"] for row in await cur.fetchall()}
