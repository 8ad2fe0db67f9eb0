"""Booking status cache in Redis, so polling clients do not hit PostgreSQL on every poll.

The API writes the request fields once Kafka acknowledged; the worker writes the whole record
after PostgreSQL committed the decision. Both writes are idempotent and never conflict: the
request fields are the same on both sides, and only the worker writes the decision.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from shared.contracts import BookingRequested, Decision


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


class DecisionCache:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_s

    def _key(self, booking_id: uuid.UUID | str) -> str:
        return f"{self._prefix}:booking:{booking_id}"

    async def remember_requests(self, requests: Sequence[BookingRequested]) -> None:
        """Record accepted (PENDING) bookings, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for request in requests:
                key = self._key(request.booking_id)
                pipe.hset(key, mapping=_request_fields(request))
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def remember_decisions(
        self, decided: Sequence[tuple[BookingRequested, Decision]]
    ) -> None:
        if not decided:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for request, decision in decided:
                key = self._key(request.booking_id)
                fields = _request_fields(request)
                fields.update(
                    status=decision.status.value,
                    reason=decision.reason.value if decision.reason else "",
                    seats=",".join(decision.seats),
                    decided_at_ms=str(decision.decided_at_ms),
                )
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def get(self, booking_id: uuid.UUID) -> BookingView | None:
        raw = await self._redis.hgetall(self._key(booking_id))
        if not raw:
            return None
        f = {str(k): str(v) for k, v in raw.items()}  # text already: decode_responses
        status = f.get("status", "PENDING")
        return BookingView(
            booking_id=str(booking_id),
            event_id=int(f["event_id"]),
            user_id=f["user_id"],
            quantity=int(f["quantity"]),
            status=status,
            reason=f.get("reason") or None,
            seats=[s for s in f.get("seats", "").split(",") if s],
            requested_at=iso_from_ms(int(f["requested_at_ms"])),
            decided_at=iso_from_ms(int(f["decided_at_ms"])) if "decided_at_ms" in f else None,
        )


def _request_fields(request: BookingRequested) -> dict[FieldT, EncodableT]:
    return {
        "event_id": str(request.event_id),
        "user_id": request.user_id,
        "quantity": str(request.quantity),
        "requested_at_ms": str(request.requested_at_ms),
    }


def iso_from_ms(ms: int) -> str:
    """Milliseconds since the epoch as an ISO 8601 UTC timestamp."""
    stamp = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
