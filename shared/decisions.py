"""Booking status cache in Redis, so polling clients do not hit PostgreSQL on every poll.

One JSON value per booking. The API writes the PENDING record once Kafka acknowledged, with
SET NX, so it can never overwrite a decision a fast worker already wrote; the worker writes
the decided record after PostgreSQL committed it, and tells the API's booking streams which
records it wrote (one pub/sub message per batch, on `RedisKeys.booking_changes`). Either
side writes a whole batch with one call of remember.lua, not one pipelined command per
booking: redis-py's per-command packing and parsing would cost the worker far more than the
script does.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from shared.contracts import BookingRequested, Decision, Status
from shared.keys import RedisKeys
from shared.lua import register


class BookingView(msgspec.Struct, frozen=True):
    """A booking as the API shows it (the GET /api/bookings/{id} body)."""

    booking_id: str
    event_id: int
    user_id: str
    quantity: int
    status: str
    reason: str | None
    seats: list[str]
    requested_at: str
    decided_at: str | None
    hold_expires_at: str | None = None  # a HELD booking must be paid before then
    price_cents: int | None = None
    paid_at: str | None = None
    cancelled_at: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BookingView:
        """A decided booking as the ledger holds it."""
        return cls(
            booking_id=str(row["booking_id"]),
            event_id=row["event_id"],
            user_id=row["user_id"],
            quantity=row["quantity"],
            status=row["status"],
            reason=row["reason"],
            seats=list(row["seats"]),
            requested_at=iso_from_ms(int(row["requested_at"].timestamp() * 1000)),
            decided_at=_iso(row["decided_at"]),
            hold_expires_at=_iso(row["hold_expires_at"]),
            price_cents=row["price_cents"],
            paid_at=_iso(row["paid_at"]),
            cancelled_at=_iso(row["cancelled_at"]),
        )


class _Record(msgspec.Struct, frozen=True, array_like=True):
    """What is stored per booking (compact: a JSON array)."""

    event_id: int
    user_id: str
    quantity: int
    status: Status
    reason: str | None
    seats: tuple[str, ...]
    requested_at_ms: int
    decided_at_ms: int | None
    hold_expires_at_ms: int | None = None
    paid_at_ms: int | None = None
    cancelled_at_ms: int | None = None
    price_cents: int | None = None


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Record).decode


class DecisionCache:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._ttl = ttl_s
        self._script = register(redis, "remember")

    async def remember_requests(self, requests: Sequence[BookingRequested]) -> None:
        """Record accepted (PENDING) bookings, in one round trip."""
        records = [
            (r.booking_id, _Record(
                r.event_id, r.user_id, r.quantity, Status.PENDING, None, (),
                r.requested_at_ms, None,
            ))
            for r in requests
        ]  # fmt: skip
        await self._remember(records, "NX", "")

    async def remember_decisions(
        self, decided: Sequence[tuple[BookingRequested, Decision]]
    ) -> None:
        """Record decisions (after PostgreSQL committed them), in one round trip."""
        records = [
            (r.booking_id, _Record(
                r.event_id, r.user_id, r.quantity, d.status,
                d.reason.value if d.reason else None, d.seats,
                r.requested_at_ms, d.decided_at_ms,
                d.hold_expires_at_ms, d.paid_at_ms, d.cancelled_at_ms, d.price_cents,
            ))
            for r, d in decided
        ]  # fmt: skip
        await self._remember(records, "ALWAYS", self._keys.booking_changes)

    async def _remember(
        self, records: list[tuple[uuid.UUID, _Record]], mode: str, channel: str
    ) -> None:
        if records:
            keys = self._keys.decisions([booking_id for booking_id, _ in records])
            values = [_encode(record) for _, record in records]
            await self._script(keys=keys, args=[self._ttl, mode, channel, *values])

    async def get(self, booking_id: uuid.UUID) -> BookingView | None:
        raw = await self._redis.get(self._keys.decision(booking_id))
        if raw is None:
            return None
        return view_of(booking_id, raw)


def view_of(booking_id: uuid.UUID | str, raw: bytes | str) -> BookingView | None:
    """A stored record as the API shows it; None when only the ledger can tell (a hold past
    its deadline)."""
    record = _decode(raw)
    # A hold past its deadline is the ledger's to tell: the worker may have expired (or
    # a payment confirmed) it and crashed before updating this record.
    deadline_ms = record.hold_expires_at_ms
    if record.status is Status.HELD and deadline_ms and deadline_ms <= time.time() * 1000:
        return None
    return BookingView(
        booking_id=str(booking_id),
        event_id=record.event_id,
        user_id=record.user_id,
        quantity=record.quantity,
        status=record.status.value,
        reason=record.reason,
        seats=list(record.seats),
        requested_at=iso_from_ms(record.requested_at_ms),
        decided_at=_iso_ms(record.decided_at_ms),
        hold_expires_at=_iso_ms(record.hold_expires_at_ms),
        price_cents=record.price_cents,
        paid_at=_iso_ms(record.paid_at_ms),
        cancelled_at=_iso_ms(record.cancelled_at_ms),
    )


def _iso(stamp: dt.datetime | None) -> str | None:
    return None if stamp is None else iso_from_ms(int(stamp.timestamp() * 1000))


def _iso_ms(ms: int | None) -> str | None:
    return None if ms is None else iso_from_ms(ms)


def iso_from_ms(ms: int) -> str:
    """Milliseconds since the epoch as an ISO 8601 UTC timestamp."""
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
