"""A ledger over a test's own database and Redis keys: the finalizer, the gate, the audit."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import redis.asyncio as aioredis

from consumer.finalize import Finalizer
from shared.audit import AuditReport, Verdict, audit_event
from shared.config import Settings
from shared.contracts import BookingRequested, CancelRequested, PaymentReceived
from shared.db import open_pool
from shared.decisions import DecisionCache
from shared.inventory import Inventory
from shared.seating import Layout, SectionSpec
from shared.venue import create_event


class Ledger:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.pool = open_pool(settings, max_size=2)
        self.inventory = Inventory(redis, settings.redis_prefix)
        self.cache = DecisionCache(redis, settings.redis_prefix, 60)
        self.finalizer = Finalizer(settings, self.pool, self.inventory, self.cache)

    async def event(
        self,
        capacity: int | None = None,
        limit: int = 10,
        hold_seconds: int = 0,
        sections: list[SectionSpec] | None = None,
    ) -> int:
        """An event as the API creates it: general admission, or these sections."""
        if sections is not None:
            layout = Layout.from_specs(sections)
        else:
            assert capacity is not None
            layout = Layout.general_admission(capacity)
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            row = await create_event(cur, "e", limit, hold_seconds, layout)
        await self.inventory.open(row["id"], layout.capacity)
        return int(row["id"])

    async def audit(self, event_id: int) -> Verdict:
        return (await self.report(event_id)).verdict

    async def report(self, event_id: int) -> AuditReport:
        report = await audit_event(self.pool, self.inventory, event_id)
        assert report is not None
        return report

    def run_out(self, booking_ids: list[uuid.UUID]) -> None:
        """Move these holds' deadline into the past, as if their time had run out."""
        with psycopg.connect(self.settings.database_url) as conn:
            conn.execute(
                "UPDATE bookings SET hold_expires_at = now() - interval '1 second'"
                " WHERE booking_id = ANY(%s) AND status = 'HELD'",
                [booking_ids],
            )

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.database_url) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def request(event_id: int, user: str, quantity: int = 1) -> BookingRequested:
    return BookingRequested(uuid.uuid4(), event_id, user, quantity, int(time.time() * 1000))


def payment(
    event_id: int,
    booking_id: uuid.UUID,
    ref: str,
    provider: str = "dev",
    webhook_event_id: str | None = None,
) -> PaymentReceived:
    return PaymentReceived(
        booking_id,
        event_id,
        "stripe" if provider == "stripe" else "dev",
        ref,
        int(time.time() * 1000),
        webhook_event_id=webhook_event_id,
    )


def cancel(event_id: int, booking_id: uuid.UUID, by: str = "admin") -> CancelRequested:
    return CancelRequested(booking_id, event_id, by, int(time.time() * 1000))
