"""The finalizer against a real PostgreSQL and Redis: decisions, seats, replays, arbitration."""

from __future__ import annotations

import uuid
from collections import Counter

import msgspec
import psycopg
import pytest
import redis.asyncio as aioredis

from shared.audit import Verdict, audit_event
from shared.contracts import Reason, Status
from shared.db import TextArrayBinaryDumper
from shared.inventory import Ask
from shared.seating import SectionSpec
from tests.integration.ledger import Ledger, request

pytestmark = pytest.mark.integration


async def test_confirms_up_to_capacity_with_lowest_seats(ledger: Ledger) -> None:
    event = await ledger.event(capacity=5)
    requests = [request(event, f"u{i}", 2) for i in range(4)]
    decisions = await ledger.finalizer.finalize(requests)
    statuses = [(d.status, d.reason) for d in decisions]
    assert statuses == [
        (Status.CONFIRMED, None),
        (Status.CONFIRMED, None),
        (Status.REJECTED, Reason.SOLD_OUT),  # 1 seat left, 2 asked
        (Status.REJECTED, Reason.SOLD_OUT),
    ]
    assert [d.seats for d in decisions[:2]] == [("R1-1", "R1-2"), ("R1-3", "R1-4")]
    last = await ledger.finalizer.finalize([request(event, "late", 1)])
    assert last[0].seats == ("R1-5",)
    assert await ledger.audit(event) is Verdict.CLEAN
    assert await ledger.inventory.available(event) == 0


async def test_free_seats_with_a_gap_still_go_lowest_first(ledger: Ledger) -> None:
    """Seats are normally one free run (taken lowest first, never given back); should a
    seat in the middle be free, the finaliser still hands out the lowest free seats."""
    event = await ledger.event(capacity=6)
    first = await ledger.finalizer.finalize([request(event, f"u{i}") for i in range(3)])
    assert [d.seats for d in first] == [("R1-1",), ("R1-2",), ("R1-3",)]
    with psycopg.connect(ledger.settings.database_url) as conn:
        # An operator gives seat 2 back by hand, and says so by moving the seat version (the
        # worker trusts its seat map only while that stays put).
        conn.execute(
            "UPDATE seats SET booking_id = NULL WHERE event_id = %s AND seat_no = 2", (event,)
        )
        conn.execute("DELETE FROM bookings WHERE booking_id = %s", (first[1].booking_id,))
        conn.execute(
            "UPDATE events SET sold = sold - 1, seat_version = seat_version + 1 WHERE id = %s",
            (event,),
        )
    pair = await ledger.finalizer.finalize([request(event, "pair", 2)])
    assert (pair[0].status, pair[0].seats) == (Status.CONFIRMED, ("R1-2", "R1-4"))
    with psycopg.connect(ledger.settings.database_url) as conn:
        taken = conn.execute(
            "SELECT seat_no FROM seats WHERE event_id = %s AND booking_id = %s ORDER BY seat_no",
            (event, pair[0].booking_id),
        ).fetchall()
    assert taken == [(2,), (4,)]


async def test_redelivered_batch_changes_nothing(ledger: Ledger) -> None:
    event = await ledger.event(capacity=3)
    batch = [request(event, f"u{i}") for i in range(5)]
    first = await ledger.finalizer.finalize(batch)
    again = await ledger.finalizer.finalize(batch + batch)  # duplicates inside one batch too
    assert [(d.booking_id, d.status, d.seats) for d in again] == [
        (d.booking_id, d.status, d.seats) for d in first
    ]
    with psycopg.connect(ledger.settings.database_url) as conn:
        row = conn.execute("SELECT sold, (SELECT count(*) FROM bookings) FROM events").fetchone()
    assert row == (3, 5)
    assert await ledger.inventory.available(event) == 0
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_crash_after_reserve_reuses_the_holds(ledger: Ledger) -> None:
    """A worker died after reserve.lua and before COMMIT: the replay takes no stock again."""
    event = await ledger.event(capacity=4)
    batch = [request(event, f"u{i}") for i in range(3)]
    asks = [Ask(r.booking_id, r.user_id, r.quantity) for r in batch]
    await ledger.inventory.reserve(event, 10, asks)  # the dead worker's reservation
    assert await ledger.audit(event) is Verdict.IN_FLIGHT
    decisions = await ledger.finalizer.finalize(batch)
    assert all(d.status is Status.CONFIRMED for d in decisions)
    assert await ledger.inventory.available(event) == 1
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_postgres_refuses_what_a_wrong_counter_admits(ledger: Ledger) -> None:
    """Redis is only a gate: with a counter that lies high, PostgreSQL still sells only
    capacity, and gives the refused holds back exactly once."""
    event = await ledger.event(capacity=3)
    await ledger.inventory.rebuild(event, 0, {}, [])  # no-op: counter exists
    avail_key = ledger.inventory.keys(event)[0]
    redis_client = ledger.inventory._redis
    await redis_client.set(avail_key, 100)
    decisions = await ledger.finalizer.finalize([request(event, f"u{i}") for i in range(5)])
    assert Counter(d.status for d in decisions) == {Status.CONFIRMED: 3, Status.REJECTED: 2}
    assert await ledger.inventory.available(event) == 97  # 100 - 5 held + 2 released
    snap = await ledger.inventory.snapshot(event)
    assert snap.held == 0
    with psycopg.connect(ledger.settings.database_url) as conn:
        sold = conn.execute("SELECT sold FROM events").fetchone()
        seats = conn.execute("SELECT count(*) FROM seats WHERE booking_id IS NOT NULL").fetchone()
    assert sold == (3,) and seats == (3,)
    assert await ledger.audit(event) is Verdict.DRIFT  # the lie detector sees the lie


async def test_lost_counter_is_rebuilt_from_postgres(ledger: Ledger) -> None:
    event = await ledger.event(capacity=10, limit=3)
    await ledger.finalizer.finalize([request(event, "alice", 3), request(event, "bob", 2)])
    await ledger.inventory._redis.delete(*ledger.inventory.keys(event))  # Redis lost its data
    assert await ledger.audit(event) is Verdict.DRIFT
    decisions = await ledger.finalizer.finalize(
        [request(event, "alice", 1), request(event, "bob", 1), request(event, "carol", 3)]
    )
    assert [(d.status, d.reason) for d in decisions] == [
        (Status.REJECTED, Reason.LIMIT_EXCEEDED),  # alice's 3 were rebuilt from PostgreSQL
        (Status.CONFIRMED, None),
        (Status.CONFIRMED, None),
    ]
    assert await ledger.inventory.available(event) == 1
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_postgres_enforces_the_user_limit_when_redis_forgot_it(ledger: Ledger) -> None:
    event = await ledger.event(capacity=10, limit=2)
    await ledger.finalizer.finalize([request(event, "alice", 2)])
    await ledger.inventory._redis.delete(ledger.inventory.keys(event)[1])  # per-user totals lost
    decisions = await ledger.finalizer.finalize([request(event, "alice", 1)])
    assert (decisions[0].status, decisions[0].reason) == (Status.REJECTED, Reason.LIMIT_EXCEEDED)
    assert await ledger.inventory.available(event) == 8  # the refused hold went back
    assert await ledger.audit(event) is Verdict.CLEAN


async def test_decisions_are_cached_for_polling(ledger: Ledger) -> None:
    event = await ledger.event(capacity=1)
    ok, late = request(event, "a"), request(event, "b")
    await ledger.finalizer.finalize([ok, late])
    confirmed = await ledger.cache.get(ok.booking_id)
    rejected = await ledger.cache.get(late.booking_id)
    assert confirmed is not None and rejected is not None
    assert (confirmed.status, confirmed.seats) == ("CONFIRMED", ["R1-1"])
    assert (rejected.status, rejected.reason, rejected.seats) == ("REJECTED", "SOLD_OUT", [])


async def test_audit_catches_a_seat_held_by_no_confirmed_booking(ledger: Ledger) -> None:
    event = await ledger.event(capacity=3)
    decisions = await ledger.finalizer.finalize([request(event, "a"), request(event, "b")])
    with psycopg.connect(ledger.settings.database_url) as conn:
        # Corrupt the ledger by hand: a booking that does not exist takes seat 3.
        conn.execute("UPDATE seats SET booking_id = %s WHERE seat_no = 3", (uuid.uuid4(),))
    report = await audit_event(ledger.pool, ledger.inventory, event)
    assert report is not None
    assert report.misassigned_seats == 1
    assert report.verdict is Verdict.DRIFT
    assert all(d.status is Status.CONFIRMED for d in decisions)


async def test_audit_catches_a_booking_whose_seats_disagree_with_the_seat_map(
    ledger: Ledger,
) -> None:
    """A poll shows the seats stored on the booking; the seat map is what was sold. The audit
    compares the two."""
    event = await ledger.event(capacity=3)
    decisions = await ledger.finalizer.finalize([request(event, "a"), request(event, "b")])
    assert [d.seats for d in decisions] == [("R1-1",), ("R1-2",)]
    assert await ledger.audit(event) is Verdict.CLEAN
    with psycopg.connect(ledger.settings.database_url) as conn:
        conn.execute(
            "UPDATE bookings SET seats = '{R1-3}' WHERE booking_id = %s",
            (decisions[1].booking_id,),
        )
    report = await audit_event(ledger.pool, ledger.inventory, event)
    assert report is not None
    assert (report.misrecorded_bookings, report.misassigned_seats) == (1, 0)
    assert report.verdict is Verdict.DRIFT


async def test_named_seats_are_listed_in_seat_order_whatever_order_they_were_named(
    ledger: Ledger,
) -> None:
    """A buyer may name seats in any order; the booking lists them as the seat map has them,
    so the audit (which compares the two) stays CLEAN."""
    event = await ledger.event(sections=[SectionSpec("A", rows=2, seats_per_row=5)])
    named = msgspec.structs.replace(request(event, "a", 3), seats=(7, 2, 3))  # A-2-2, A-1-2, ...
    [decision] = await ledger.finalizer.finalize([named])
    assert (decision.status, decision.seats) == (Status.CONFIRMED, ("A-1-2", "A-1-3", "A-2-2"))
    [row] = ledger.rows("SELECT seats FROM bookings WHERE booking_id = %s", named.booking_id)
    assert row[0] == ["A-1-2", "A-1-3", "A-2-2"]
    report = await ledger.report(event)
    assert (report.misrecorded_bookings, report.verdict) == (0, Verdict.CLEAN)


async def test_postgres_limit_check_reads_every_user_id_as_written(
    ledger: Ledger, redis_client: aioredis.Redis
) -> None:
    """PostgreSQL re-checks per-user limits with its own lookup, whatever the gate says. User
    ids with commas, quotes, backslashes, braces or the word NULL are looked up as written."""
    users = ["a,b", 'q"x', "back\\slash", "{brace}", "NULL", " spaced "]
    event = await ledger.event(capacity=20, limit=1)
    first = await ledger.finalizer.finalize([request(event, u) for u in users])
    assert {d.status for d in first} == {Status.CONFIRMED}
    # The gate forgets what these users hold, so it admits their second booking ...
    await redis_client.delete(ledger.inventory.keys(event)[1])
    again = await ledger.finalizer.finalize([request(event, u) for u in users])
    # ... and PostgreSQL refuses each one, giving the stock back.
    assert [(d.status, d.reason) for d in again] == [
        (Status.REJECTED, Reason.LIMIT_EXCEEDED)
    ] * len(users)
    assert await ledger.inventory.available(event) == 20 - len(users)


def test_seat_lists_copied_by_the_fast_dumper_read_back_as_written(ledger: Ledger) -> None:
    """The worker's COPY writes each booking's seats with TextArrayBinaryDumper."""
    lists = [[], ["R1-1"], ["R1-1", "R1-2"], ['quote " comma , brace {}', "ünï", "NULL"]]
    with psycopg.connect(ledger.settings.database_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE copied (n int, seats text[] NOT NULL)")
        cur.adapters.register_dumper(None, TextArrayBinaryDumper)
        with cur.copy("COPY copied (n, seats) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text[]"])
            for n, seats in enumerate(lists):
                copy.write_row((n, seats))
        cur.execute("SELECT seats FROM copied ORDER BY n")
        assert [row[0] for row in cur.fetchall()] == lists
