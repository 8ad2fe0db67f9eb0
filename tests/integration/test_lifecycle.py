"""Holds, payments, expiry and cancellation through the finalizer, against a real PostgreSQL
and Redis: each transition happens once, stock and seats come back exactly once."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from shared.audit import Verdict
from shared.contracts import Reason, Status
from shared.inventory import Release
from tests.integration.ledger import Ledger, cancel, payment, request

pytestmark = pytest.mark.integration

HOLD_S = 600


async def test_a_hold_takes_stock_and_a_payment_confirms_it(ledger: Ledger) -> None:
    event = await ledger.event(capacity=3, hold_seconds=HOLD_S)
    held = request(event, "alice", 2)
    [decision] = await ledger.finalizer.finalize([held])
    assert decision.status is Status.HELD
    assert decision.seats == ("R1-1", "R1-2")
    assert decision.hold_expires_at_ms is not None
    assert decision.hold_expires_at_ms - decision.decided_at_ms == HOLD_S * 1000
    report = await ledger.report(event)
    assert (report.held_bookings, report.held_quantity, report.sold) == (1, 2, 0)
    assert (report.redis_available, report.verdict) == (1, Verdict.CLEAN)

    outcome = await ledger.finalizer.apply([payment(event, held.booking_id, "pay-1")])
    [(_, paid)] = outcome.changed
    assert (paid.status, paid.seats, paid.paid_at_ms is not None) == (
        Status.CONFIRMED,
        ("R1-1", "R1-2"),
        True,
    )
    view = await ledger.cache.get(held.booking_id)
    assert view is not None and view.status == "CONFIRMED" and view.paid_at is not None
    report = await ledger.report(event)
    assert (report.sold, report.held_quantity, report.confirmed_bookings) == (2, 0, 1)
    assert (report.redis_available, report.verdict, report.refunds_due) == (1, Verdict.CLEAN, [])


async def test_expired_holds_give_stock_and_seats_back_once(ledger: Ledger) -> None:
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    holds = [request(event, "a"), request(event, "b")]
    late = request(event, "c")
    decisions = await ledger.finalizer.finalize([*holds, late])
    assert [d.status for d in decisions] == [Status.HELD, Status.HELD, Status.REJECTED]
    assert await ledger.inventory.available(event) == 0

    ledger.run_out([h.booking_id for h in holds])
    outcome = await ledger.finalizer.apply([], expire=[event])
    assert sorted(d.status for _, d in outcome.changed) == [Status.EXPIRED, Status.EXPIRED]
    assert await ledger.inventory.available(event) == 2
    again = await ledger.finalizer.apply([], expire=[event])
    assert again.changed == []
    assert await ledger.inventory.available(event) == 2  # not 4
    report = await ledger.report(event)
    assert (report.expired_bookings, report.held_quantity, report.seats_assigned) == (2, 0, 0)
    assert report.verdict is Verdict.CLEAN

    # The sold-out event admits again, and the next buyer gets the lowest free seat.
    [resold] = await ledger.finalizer.finalize([request(event, "d")])
    assert (resold.status, resold.seats) == (Status.HELD, ("R1-1",))
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_expiry_frees_stock_for_the_same_batch(ledger: Ledger) -> None:
    event = await ledger.event(capacity=1, hold_seconds=HOLD_S)
    [first] = await ledger.finalizer.finalize([hold := request(event, "a")])
    assert first.status is Status.HELD
    ledger.run_out([hold.booking_id])
    [second] = await ledger.finalizer.finalize([request(event, "b")])
    assert (second.status, second.seats) == (Status.HELD, ("R1-1",))
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_a_payment_after_the_deadline_is_kept_for_refund(ledger: Ledger) -> None:
    """Payment and expiry in one batch: the hold ran out before the batch was decided, so
    the expiry wins whatever the order, and the payment is owed back."""
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    await ledger.finalizer.finalize([hold])
    ledger.run_out([hold.booking_id])
    outcome = await ledger.finalizer.apply([payment(event, hold.booking_id, "too-late")])
    assert [d.status for _, d in outcome.changed] == [Status.EXPIRED]
    report = await ledger.report(event)
    assert [(r.booking_id, r.payment_ref) for r in report.refunds_due] == [
        (str(hold.booking_id), "too-late")
    ]
    assert (report.sold, report.held_quantity, report.redis_available) == (0, 0, 2)
    assert report.verdict is Verdict.CLEAN


async def test_a_payment_in_time_is_never_expired(ledger: Ledger) -> None:
    """The other order: paid before the deadline, then the sweep comes: nothing to expire."""
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    await ledger.finalizer.finalize([hold])
    await ledger.finalizer.apply([payment(event, hold.booking_id, "in-time")])
    ledger.run_out([hold.booking_id])  # only touches HELD bookings: a no-op now
    swept = await ledger.finalizer.apply([], expire=[event])
    assert swept.changed == []
    [(status,)] = ledger.rows("SELECT status FROM bookings WHERE booking_id = %s", hold.booking_id)
    assert status == "CONFIRMED"
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_a_payment_applies_once_however_often_it_arrives(ledger: Ledger) -> None:
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    await ledger.finalizer.finalize([hold])
    paid = payment(event, hold.booking_id, "pi_1", "stripe", webhook_event_id="evt_1")
    again = payment(event, hold.booking_id, "pi_1", "stripe", webhook_event_id="evt_2")
    first = await ledger.finalizer.apply([paid, paid, again])
    assert [d.status for _, d in first.changed] == [Status.CONFIRMED]
    redelivered = await ledger.finalizer.apply([paid, again])
    assert redelivered.changed == []
    payments = ledger.rows("SELECT provider, payment_ref, outcome FROM payments")
    assert payments == [("stripe", "pi_1", "applied")]
    hooks = ledger.rows("SELECT event_id FROM webhook_events ORDER BY event_id")
    assert hooks == [("evt_1",), ("evt_2",)]
    # A second, different payment for a booking already paid is owed back.
    await ledger.finalizer.apply([payment(event, hold.booking_id, "pi_2", "stripe")])
    report = await ledger.report(event)
    assert [r.payment_ref for r in report.refunds_due] == ["pi_2"]
    assert (report.sold, report.verdict) == (1, Verdict.CLEAN)


async def test_a_redelivered_payment_repairs_a_status_the_cache_lost(ledger: Ledger) -> None:
    """A crash between the payment's commit and the cache write left the cache saying HELD:
    the redelivered command records the booking as the ledger has it."""
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    [held] = await ledger.finalizer.finalize([hold])
    paid = payment(event, hold.booking_id, "pay-1")
    await ledger.finalizer.apply([paid])
    await ledger.cache.remember_decisions([(hold, held)])  # as if the write never happened
    view = await ledger.cache.get(hold.booking_id)
    assert view is not None and view.status == "HELD"
    redelivered = await ledger.finalizer.apply([paid])
    assert redelivered.changed == []
    view = await ledger.cache.get(hold.booking_id)
    assert view is not None and view.status == "CONFIRMED"
    assert ledger.rows("SELECT count(*) FROM payments") == [(1,)]


async def test_the_cache_does_not_vouch_for_a_hold_past_its_deadline(ledger: Ledger) -> None:
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    [held] = await ledger.finalizer.finalize([hold])
    assert await ledger.cache.get(hold.booking_id) is not None
    past = msgspec.structs.replace(held, hold_expires_at_ms=held.decided_at_ms - 1)
    await ledger.cache.remember_decisions([(hold, past)])
    assert await ledger.cache.get(hold.booking_id) is None  # the API asks PostgreSQL


async def test_cancelling_gives_back_once_and_owes_the_payment(ledger: Ledger) -> None:
    event = await ledger.event(capacity=3, hold_seconds=HOLD_S)
    held, bought = request(event, "a", 1), request(event, "b", 2)
    await ledger.finalizer.finalize([held, bought])
    await ledger.finalizer.apply([payment(event, bought.booking_id, "pay-b")])
    assert await ledger.inventory.available(event) == 0

    outcome = await ledger.finalizer.apply(
        [cancel(event, held.booking_id), cancel(event, bought.booking_id, "b")]
    )
    assert [d.status for _, d in outcome.changed] == [Status.CANCELLED, Status.CANCELLED]
    assert all(d.cancelled_at_ms for _, d in outcome.changed)
    twice = await ledger.finalizer.apply(
        [cancel(event, held.booking_id), cancel(event, bought.booking_id)]
    )
    assert twice.changed == []
    report = await ledger.report(event)
    assert (report.cancelled_bookings, report.sold, report.held_quantity) == (2, 0, 0)
    assert (report.redis_available, report.seats_assigned) == (3, 0)
    assert [r.payment_ref for r in report.refunds_due] == ["pay-b"]
    assert report.verdict is Verdict.CLEAN
    # The limit counts live bookings only: "b" may book its two again.
    [rebook] = await ledger.finalizer.finalize([request(event, "b", 2)])
    assert rebook.status is Status.HELD


async def test_paid_then_cancelled_in_one_batch(ledger: Ledger) -> None:
    event = await ledger.event(capacity=1, hold_seconds=HOLD_S)
    hold = request(event, "a")
    await ledger.finalizer.finalize([hold])
    outcome = await ledger.finalizer.apply(
        [payment(event, hold.booking_id, "p"), cancel(event, hold.booking_id)]
    )
    assert [d.status for _, d in outcome.changed] == [Status.CANCELLED]
    report = await ledger.report(event)
    assert [r.payment_ref for r in report.refunds_due] == ["p"]
    assert (report.sold, report.redis_available, report.verdict) == (0, 1, Verdict.CLEAN)


async def test_a_retried_release_gives_stock_back_once(ledger: Ledger) -> None:
    """A worker gave an expired hold's stock back at the gate and died before its COMMIT:
    the retry finds the release mark and gives nothing back twice."""
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    await ledger.finalizer.finalize([hold, request(event, "b")])
    ledger.run_out([hold.booking_id])
    await ledger.inventory.reserve(event, 10, [], [Release(hold.booking_id, "a", 1, [1])])
    assert await ledger.inventory.available(event) == 1  # given back; PostgreSQL: still HELD
    assert await ledger.audit(event) is Verdict.IN_FLIGHT  # a release waits for its commit

    outcome = await ledger.finalizer.apply([], expire=[event])
    assert [d.status for _, d in outcome.changed] == [Status.EXPIRED]
    assert await ledger.inventory.available(event) == 1  # not 2
    assert await ledger.inventory.released_ids(event) == set()  # the mark is gone
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_a_counter_rebuilt_with_live_holds_counts_them(ledger: Ledger) -> None:
    event = await ledger.event(capacity=1000, limit=1, hold_seconds=HOLD_S)
    holds = [request(event, f"u{i}") for i in range(1000)]
    decisions = await ledger.finalizer.finalize(holds)
    assert {d.status for d in decisions} == {Status.HELD}
    await ledger.inventory._redis.delete(*ledger.inventory.keys(event))  # Redis lost it all

    [late] = await ledger.finalizer.finalize([request(event, "late")])
    assert (late.status, late.reason) == (Status.REJECTED, Reason.SOLD_OUT)
    [again] = await ledger.finalizer.finalize([request(event, "u1")])
    assert (again.status, again.reason) == (Status.REJECTED, Reason.LIMIT_EXCEEDED)
    report = await ledger.report(event)
    assert (report.redis_available, report.held_quantity, report.verdict) == (
        0,
        1000,
        Verdict.CLEAN,
    )
    ledger.run_out([h.booking_id for h in holds[:10]])
    await ledger.finalizer.apply([], expire=[event])
    assert await ledger.inventory.available(event) == 10
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_commands_for_unknown_bookings_change_nothing_but_keep_the_payment(
    ledger: Ledger,
) -> None:
    event = await ledger.event(capacity=1, hold_seconds=HOLD_S)
    ghost = uuid.uuid4()
    outcome = await ledger.finalizer.apply([cancel(event, ghost), payment(event, ghost, "lost")])
    assert outcome.changed == []
    report = await ledger.report(event)
    assert [r.payment_ref for r in report.refunds_due] == ["lost"]
    assert (report.redis_available, report.verdict) == (1, Verdict.CLEAN)


@pytest.mark.parametrize("ran_out", [True, False])
async def test_a_payment_and_the_expiry_sweep_in_one_batch(ledger: Ledger, ran_out: bool) -> None:
    """The sweep and a payment of the same hold decided together: the deadline alone says
    which wins, not the order they came in."""
    event = await ledger.event(capacity=2, hold_seconds=HOLD_S)
    hold = request(event, "a")
    await ledger.finalizer.finalize([hold])
    if ran_out:
        ledger.run_out([hold.booking_id])
    outcome = await ledger.finalizer.apply(
        [payment(event, hold.booking_id, "same-batch")], expire=[event]
    )
    [(_, decision)] = outcome.changed
    report = await ledger.report(event)
    if ran_out:
        assert decision.status is Status.EXPIRED
        assert [r.payment_ref for r in report.refunds_due] == ["same-batch"]
        assert (report.sold, report.redis_available) == (0, 2)
    else:
        assert decision.status is Status.CONFIRMED
        assert (report.refunds_due, report.sold, report.redis_available) == ([], 1, 1)
    assert report.verdict is Verdict.CLEAN
