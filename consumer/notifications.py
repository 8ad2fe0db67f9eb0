"""The notifier's record in PostgreSQL: which booking events were mailed (one row per
(event_id, seq), sql/011_notifications.sql), and the buyers' addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from shared.contracts import BookingEvent
from shared.db import NamedQueries, Pool

queries = NamedQueries("consumer", "notifications.sql")


@dataclass(frozen=True, slots=True)
class Mailing:
    """One booking event to mail, and to whom."""

    event: BookingEvent
    recipient: str

    def params(self, reply: str | None = None) -> dict[str, Any]:
        e = self.event
        return {
            "event_id": e.event_id,
            "seq": e.seq,
            "booking_id": e.booking_id,
            "status": str(e.status),
            "recipient": self.recipient,
            "reply": reply,
        }


async def recipients(pool: Pool, user_ids: set[str]) -> dict[str, str]:
    """The address of each buyer that has an account (open-mode buyers have none)."""
    if not user_ids:
        return {}
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(queries.recipients, {"user_ids": sorted(user_ids)})
        return {row["user_id"]: row["email"] for row in await cur.fetchall()}


async def claim(conn: AsyncConnection[DictRow], mailing: Mailing) -> bool:
    """Insert the event's row in the open transaction of `conn`; False if it was mailed
    (or refused) before. Waits while another notifier holds the same row uncommitted."""
    cur = await conn.execute(queries.claim, mailing.params())
    return await cur.fetchone() is not None


async def record_refused(conn: AsyncConnection[DictRow], mailing: Mailing, reply: str) -> None:
    await conn.execute(queries.record_refused, mailing.params(reply))


async def record_handed(pool: Pool, mailing: Mailing, reply: str) -> None:
    """The mail left for the server but its claim's commit failed: never send it again."""
    async with pool.connection() as conn:
        await conn.execute(queries.record_handed, mailing.params(reply))


async def record_accepted(pool: Pool, accepted: list[tuple[Mailing, str]]) -> None:
    """The server's 250 for these mails (their rows are written if their claim's commit
    failed), in one statement per batch."""
    if not accepted:
        return
    events = [m.event for m, _ in accepted]
    params = {
        "event_ids": [e.event_id for e in events],
        "seqs": [e.seq for e in events],
        "booking_ids": [e.booking_id for e in events],
        "statuses": [str(e.status) for e in events],
        "recipients": [m.recipient for m, _ in accepted],
        "replies": [reply for _, reply in accepted],
    }
    async with pool.connection() as conn:
        await conn.execute(queries.record_accepted, params)


async def refuse(pool: Pool, mailing: Mailing, reply: str) -> None:
    async with pool.connection() as conn:
        await record_refused(conn, mailing, reply)


async def forget(pool: Pool, mailing: Mailing) -> None:
    """The server answered the end of DATA with a 4xx: the mail may be sent again."""
    async with pool.connection() as conn:
        await conn.execute(queries.forget, mailing.params())
