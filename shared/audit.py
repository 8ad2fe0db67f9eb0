"""The lie detector: compares PostgreSQL's ledger with the Redis gate for one event."""

from __future__ import annotations

import enum

import msgspec

from shared.db import Pool, fetch_all, fetch_one, queries
from shared.decisions import iso_from_ms
from shared.inventory import Inventory


class Verdict(enum.StrEnum):
    CLEAN = "CLEAN"  # ledger within capacity, counter == capacity - sold - held, nothing in flight
    IN_FLIGHT = "IN_FLIGHT"  # holds not yet settled, or the gate moved while auditing
    DRIFT = "DRIFT"  # counter (or seat count) disagrees with the ledger, or is missing
    OVERSOLD = "OVERSOLD"  # the ledger sold more than capacity: must never happen


class RefundDue(msgspec.Struct, frozen=True):
    """A payment that must be paid back: its booking was not HELD when it arrived, or was
    cancelled after it."""

    booking_id: str
    provider: str
    payment_ref: str
    amount_cents: int | None
    received_at: str


class AuditReport(msgspec.Struct, frozen=True):
    event_id: int
    capacity: int
    sold: int
    confirmed_bookings: int
    confirmed_quantity: int
    held_bookings: int
    held_quantity: int
    rejected_bookings: int
    expired_bookings: int
    cancelled_bookings: int
    seats_assigned: int
    redis_available: int | None
    in_flight: int
    oversold: bool
    double_assigned_seats: int
    misassigned_seats: int  # seats held by anything but a confirmed booking of the event
    misrecorded_bookings: int  # bookings whose own seat list disagrees with the seat map
    unsettled_payments: int  # payments kept without a confirmed booking, or the reverse
    drift: int | None
    verdict: Verdict
    refunds_due: list[RefundDue]


async def audit_event(pool: Pool, inventory: Inventory, event_id: int) -> AuditReport | None:
    """The audit of one event, or None if it does not exist."""
    # The gate is read before and after the ledger: if a batch moved it in between, the two
    # readings are not comparable and the answer is IN_FLIGHT, not a false DRIFT.
    before = await inventory.snapshot(event_id)
    row = await fetch_one(pool, queries.audit_event, {"event_id": event_id})
    if row is None:
        return None
    gate = await inventory.snapshot(event_id)
    refunds = await fetch_all(pool, queries.refunds_due, {"event_id": event_id})
    moving = gate != before
    capacity, sold, held = row["capacity"], row["sold"], row["held"]
    taken = row["confirmed_quantity"] + row["held_quantity"]
    oversold = sold + held > capacity or taken > capacity
    drift = None
    if gate.available is not None:
        drift = gate.available + gate.held - (capacity - sold - held)
    ledger_consistent = (
        row["confirmed_quantity"] == sold
        and row["held_quantity"] == held
        and row["seats_assigned"] == sold + held
        and row["double_assigned_seats"] == 0
        and row["misassigned_seats"] == 0
        and row["misrecorded_bookings"] == 0
        and row["unsettled_payments"] == 0
    )
    if oversold:
        verdict = Verdict.OVERSOLD
    elif gate.held > 0 or gate.releasing > 0 or moving:
        verdict = Verdict.IN_FLIGHT
    elif drift != 0 or not ledger_consistent:
        verdict = Verdict.DRIFT
    else:
        verdict = Verdict.CLEAN
    return AuditReport(
        event_id=event_id,
        capacity=capacity,
        sold=sold,
        confirmed_bookings=row["confirmed_bookings"],
        confirmed_quantity=row["confirmed_quantity"],
        held_bookings=row["held_bookings"],
        held_quantity=row["held_quantity"],
        rejected_bookings=row["rejected_bookings"],
        expired_bookings=row["expired_bookings"],
        cancelled_bookings=row["cancelled_bookings"],
        seats_assigned=row["seats_assigned"],
        redis_available=gate.available,
        in_flight=gate.held,
        oversold=oversold,
        double_assigned_seats=row["double_assigned_seats"],
        misassigned_seats=row["misassigned_seats"],
        misrecorded_bookings=row["misrecorded_bookings"],
        unsettled_payments=row["unsettled_payments"],
        drift=drift,
        verdict=verdict,
        refunds_due=[
            RefundDue(
                str(r["booking_id"]),
                r["provider"],
                r["payment_ref"],
                r["amount_cents"],
                iso_from_ms(int(r["received_at"].timestamp() * 1000)),
            )
            for r in refunds
        ],
    )
