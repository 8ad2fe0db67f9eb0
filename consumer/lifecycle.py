"""What happens to a booking after its first decision: a hold paid (CONFIRMED), a hold run
out (EXPIRED), a hold or a sale cancelled (CANCELLED). Planned and written inside the event's
deciding transaction (consumer/finalize.py), under its row lock.

The transitions, and why a crash or a retry between any two steps changes nothing twice:
- HELD -> EXPIRED: every transaction of an event first expires its holds past their deadline
  at the transaction's `now`. Their stock comes back at the gate in the same reserve.lua
  call as the batch's asks, marked per booking id, so a retry of an uncommitted
  transaction does not give it back again; the guarded UPDATE (`status = 'HELD' AND
  hold_expires_at <= now`) and the `held` column change in the same commit. The marks are
  dropped after the commit (settle.lua); one left by a crash only blocks the reconciler's
  counter correction until the reconciler drops it.
- HELD -> CONFIRMED (a payment): `status = 'HELD' AND hold_expires_at > now`, in the commit
  that records the payment (provider, payment_ref) once. A payment for a booking that is not
  HELD at `now` (expired, cancelled, paid already, unknown) is recorded as refund_due. No
  stock moves: a hold already took it.
- HELD or CONFIRMED -> CANCELLED: like an expiry, plus a confirmed booking's payment turns
  refund_due.
Payments and cancellations are Kafka commands, applied in offset order after the expiries;
their offsets are committed after the commit, so a crash redelivers them, and the payment
table and the status guards make the redelivery a no-op.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from psycopg import AsyncCursor

from shared.contracts import (
    BookingRequested,
    CancelRequested,
    Decision,
    PaymentReceived,
    Reason,
    Status,
)
from shared.db import queries, text_array, uuid_array
from shared.inventory import Release
from shared.seating import Layout

log = logging.getLogger(__name__)

Change = CancelRequested | PaymentReceived
# More than this many due holds are expired over several transactions, each quick.
EXPIRE_PER_BATCH = 20_000


@dataclass(slots=True)
class _Booking:
    """A booking as the ledger holds it, and what this batch made of it."""

    row: dict[str, Any]
    status: Status
    paid_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None


@dataclass(slots=True)
class Plan:
    """The lifecycle changes of one event's slice of a batch."""

    releases: list[Release] = field(default_factory=list)  # stock back at the gate
    expired: list[uuid.UUID] = field(default_factory=list)
    paid: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)
    cancelled_confirmed: list[uuid.UUID] = field(default_factory=list)
    payments: list[tuple[PaymentReceived, str]] = field(default_factory=list)  # and outcome
    webhooks: list[PaymentReceived] = field(default_factory=list)
    freed: list[uuid.UUID] = field(default_factory=list)  # bookings giving their seats back
    freed_seats: list[int] = field(default_factory=list)  # those seats' numbers
    paid_seats: list[int] = field(default_factory=list)  # seats of the holds paid
    sold: int = 0  # change of events.sold
    held: int = 0  # change of events.held
    changed: dict[uuid.UUID, _Booking] = field(default_factory=dict)
    restated: dict[uuid.UUID, _Booking] = field(default_factory=dict)  # named, unchanged

    @property
    def empty(self) -> bool:
        return not (self.changed or self.payments or self.webhooks)

    def views(self) -> list[tuple[BookingRequested, Decision]]:
        """The changed bookings as the decision cache records them."""
        return [_view(booking) for booking in self.changed.values()]

    def transitions(self) -> list[tuple[BookingRequested, Decision]]:
        """Every state change, in order, for the booking-events outbox: a hold paid and
        cancelled in the same batch was CONFIRMED, then CANCELLED."""
        out = []
        for booking in self.changed.values():
            request, decision = _view(booking)
            if (
                booking.status is Status.CANCELLED
                and booking.paid_at is not None
                and booking.row["status"] == Status.HELD
            ):
                paid = msgspec.structs.replace(
                    decision, status=Status.CONFIRMED, cancelled_at_ms=None
                )
                out.append((request, paid))
            out.append((request, decision))
        return out

    def restated_views(self) -> list[tuple[BookingRequested, Decision]]:
        """The bookings the commands named and left as they were, recorded again."""
        return [_view(booking) for booking in self.restated.values()]


async def plan(
    cur: AsyncCursor[Any],
    event_id: int,
    event: dict[str, Any],
    changes: Sequence[Change],
    now: dt.datetime,
    layout: Layout,
) -> Plan:
    """Read what the changes touch and decide them, in order, after the due expiries."""
    out = Plan()
    bookings: dict[uuid.UUID, _Booking] = {}
    if event["held"] > 0:
        await cur.execute(
            queries.due_holds, {"event_id": event_id, "now": now, "limit": EXPIRE_PER_BATCH}
        )
        for row in await cur.fetchall():
            bookings[row["booking_id"]] = _Booking(row, Status(row["status"]))
    due = list(bookings)
    wanted = {c.booking_id for c in changes} - bookings.keys()
    if wanted:
        await cur.execute(queries.bookings_among, {"booking_ids": uuid_array(wanted)})
        for row in await cur.fetchall():
            if row["event_id"] == event_id:  # a command routed to another event names nothing
                bookings[row["booking_id"]] = _Booking(row, Status(row["status"]))
    payments = [c for c in changes if isinstance(c, PaymentReceived)]
    known, hooks = await _known_payments(cur, payments)

    for booking_id in due:
        _release(out, bookings[booking_id], Status.EXPIRED, now, layout)
    for change in changes:
        booking = bookings.get(change.booking_id)
        if isinstance(change, CancelRequested):
            if booking is not None and booking.status in (Status.HELD, Status.CONFIRMED):
                _release(out, booking, Status.CANCELLED, now, layout)
            continue
        if change.webhook_event_id is not None:
            if change.webhook_event_id in hooks:
                continue  # this Stripe event was applied before
            hooks.add(change.webhook_event_id)
            out.webhooks.append(change)
        ref = (change.provider, change.payment_ref)
        if ref in known:
            continue  # the same payment again (redelivered, or a second webhook of it)
        known.add(ref)
        in_time = booking is not None and booking.status is Status.HELD
        if in_time:
            assert booking is not None
            in_time = booking.row["hold_expires_at"] > now
        if in_time:
            assert booking is not None
            booking.status, booking.paid_at = Status.CONFIRMED, now
            out.changed[change.booking_id] = booking
            out.paid.append(change.booking_id)
            out.paid_seats += layout.seat_nos(booking.row["seats"])
            out.sold += booking.row["quantity"]
            out.held -= booking.row["quantity"]
            out.payments.append((change, "applied"))
        else:
            out.payments.append((change, "refund_due"))
            log.warning(
                "payment %s for booking %s kept for refund: the booking is %s",
                change.payment_ref,
                change.booking_id,
                booking.status if booking is not None else "unknown",
                extra={"booking_id": str(change.booking_id), "event_id": event_id},
            )
    # A booking a command names and leaves as it is gets recorded again as the ledger has
    # it: a redelivery after a crash between the commit and the cache write repairs the cache.
    for change in changes:
        booking = bookings.get(change.booking_id)
        if booking is not None and change.booking_id not in out.changed:
            out.restated[change.booking_id] = booking
    return out


def _release(out: Plan, booking: _Booking, to: Status, now: dt.datetime, layout: Layout) -> None:
    row = booking.row
    booking_id, quantity = row["booking_id"], row["quantity"]
    seat_nos = layout.seat_nos(row["seats"])
    if booking.status is Status.HELD:
        out.held -= quantity
    else:
        out.sold -= quantity
        out.cancelled_confirmed.append(booking_id)
        # Paid in this very batch: that payment is owed back too.
        out.payments = [
            (p, "refund_due" if p.booking_id == booking_id else outcome)
            for p, outcome in out.payments
        ]
    booking.status = to
    if to is Status.CANCELLED:
        booking.cancelled_at = now
        out.cancelled.append(booking_id)
    else:
        out.expired.append(booking_id)
    out.changed[booking_id] = booking
    out.releases.append(Release(booking_id, row["user_id"], quantity, seat_nos))
    out.freed.append(booking_id)
    out.freed_seats += seat_nos


async def _known_payments(
    cur: AsyncCursor[Any], payments: list[PaymentReceived]
) -> tuple[set[tuple[str, str]], set[str]]:
    """The payments and the Stripe events among these that the ledger already recorded."""
    if not payments:
        return set(), set()
    await cur.execute(
        queries.known_payments,
        {
            "providers": text_array([p.provider for p in payments]),
            "refs": text_array([p.payment_ref for p in payments]),
        },
    )
    known = {(row["provider"], row["payment_ref"]) for row in await cur.fetchall()}
    hook_ids = [p.webhook_event_id for p in payments if p.webhook_event_id is not None]
    hooks: set[str] = set()
    if hook_ids:
        await cur.execute(queries.known_webhooks, {"event_ids": text_array(hook_ids)})
        hooks = {row["event_id"] for row in await cur.fetchall()}
    return known, hooks


async def write(cur: AsyncCursor[Any], event_id: int, out: Plan, now: dt.datetime) -> None:
    """The plan's changes, each guarded by the status it expects; a guard that does not
    match everything planned aborts the transaction (the batch is retried)."""
    await _guarded(cur, queries.expire_holds, out.expired, now, "expire")
    await _guarded(cur, queries.confirm_holds, out.paid, now, "confirm")
    await _guarded(cur, queries.cancel_bookings, out.cancelled, now, "cancel")
    if out.freed:
        await cur.execute(
            queries.free_seats,
            {
                "event_id": event_id,
                "seat_nos": out.freed_seats,
                "booking_ids": uuid_array(out.freed),
            },
        )
        if cur.rowcount != len(out.freed_seats):
            raise RuntimeError(
                f"event {event_id}: freed {cur.rowcount} of {len(out.freed_seats)} seats"
            )
    if out.payments:
        await cur.execute(
            queries.record_payments,
            {
                "providers": text_array([p.provider for p, _ in out.payments]),
                "refs": text_array([p.payment_ref for p, _ in out.payments]),
                "booking_ids": uuid_array([p.booking_id for p, _ in out.payments]),
                "event_ids": [event_id] * len(out.payments),
                "amounts": [p.amount_cents for p, _ in out.payments],
                "outcomes": text_array([outcome for _, outcome in out.payments]),
                "received": [_from_ms(p.received_at_ms) for p, _ in out.payments],
            },
        )
    if out.cancelled_confirmed:
        await cur.execute(
            queries.refund_cancelled, {"booking_ids": uuid_array(out.cancelled_confirmed)}
        )
    if out.webhooks:
        await cur.execute(
            queries.record_webhooks,
            {
                "event_ids": text_array([str(p.webhook_event_id) for p in out.webhooks]),
                "types": text_array(["payment" for _ in out.webhooks]),
                "booking_ids": uuid_array([p.booking_id for p in out.webhooks]),
            },
        )


async def _guarded(
    cur: AsyncCursor[Any], query: Any, booking_ids: list[uuid.UUID], now: dt.datetime, what: str
) -> None:
    if not booking_ids:
        return
    await cur.execute(query, {"booking_ids": uuid_array(booking_ids), "now": now})
    if cur.rowcount != len(booking_ids):
        raise RuntimeError(f"{what}: {cur.rowcount} of {len(booking_ids)} bookings changed")


def _view(booking: _Booking) -> tuple[BookingRequested, Decision]:
    row = booking.row
    request = BookingRequested(
        booking_id=row["booking_id"],
        event_id=row["event_id"],
        user_id=row["user_id"],
        quantity=row["quantity"],
        requested_at_ms=_ms(row["requested_at"]),
    )
    paid_at = booking.paid_at or row["paid_at"]
    cancelled_at = booking.cancelled_at or row["cancelled_at"]
    decision = Decision(
        row["booking_id"],
        booking.status,
        Reason(row["reason"]) if row["reason"] else None,
        tuple(row["seats"]),
        _ms(row["decided_at"]),
        hold_expires_at_ms=_ms(row["hold_expires_at"]),
        paid_at_ms=_ms(paid_at) if paid_at else None,
        cancelled_at_ms=_ms(cancelled_at) if cancelled_at else None,
        price_cents=row["price_cents"],
    )
    return request, decision


def _ms(stamp: dt.datetime) -> int:
    return int(stamp.timestamp() * 1000)


def _from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
