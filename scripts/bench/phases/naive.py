"""Phase 4: the baseline to beat, one PostgreSQL transaction per booking over the same
Kafka backlog the real worker drains."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from scripts.bench.progress import say
from scripts.bench.world import (
    Conn,
    World,
    analyze,
    bench_queries,
    connect,
    create_bare_event,
    partitions_of,
)
from shared.contracts import BookingRequested, decode_command, new_booking_id
from shared.db import queries


@dataclass
class NaiveResult:
    decided: int
    confirmed: int
    seconds: float
    decisions_per_s: float


async def naive_decide(conn: Conn, event_id: int, request: BookingRequested) -> bool:
    """One booking, one transaction: lock the event, check, seat, insert, count, commit.
    A fresh booking id keeps it apart from the real worker's bookings. Seats come from the
    event's next_seat, as the worker's usually do (every seat here is taken this way)."""
    async with conn.transaction():
        cur = await conn.execute(queries.lock_event, {"event_id": event_id})
        event = await cur.fetchone()
        assert event is not None
        params = {"event_id": event_id, "user_id": request.user_id}
        mine = await (await conn.execute(bench_queries.naive_user_total, params)).fetchone()
        used = mine["quantity"] if mine else 0
        ok = used + request.quantity <= event["per_user_limit"] and (
            event["sold"] + request.quantity <= event["capacity"]
        )
        booking = {
            "booking_id": new_booking_id(),
            "event_id": event_id,
            "user_id": request.user_id,
            "quantity": request.quantity,
            "status": "CONFIRMED" if ok else "REJECTED",
            "reason": None if ok else "SOLD_OUT",
            "requested_at": dt.datetime.fromtimestamp(request.requested_at_ms / 1000, dt.UTC),
            "seats": [],
        }
        if ok:
            first = event["next_seat"]
            last = first + request.quantity - 1
            seats = {**booking, "first": first, "last": last}
            taken = await (await conn.execute(bench_queries.naive_take_seats, seats)).fetchall()
            booking["seats"] = [row["label"] for row in taken]
            sold = {"sold": request.quantity, "held": 0, "next_seat": last + 1}
            await conn.execute(queries.change_stock, {"event_id": event_id, **sold})
        await conn.execute(bench_queries.naive_insert, booking)
    return bool(ok)


async def phase_naive(world: World) -> NaiveResult:
    """4. The baseline to beat: the first `naive` messages of the backlog, fetched from Kafka
    in batches (no offset commits, which favours it), decided one transaction each, into an
    event of the baseline database with as many seats as the backlog."""
    n = world.sizes.naive
    consumer = AIOKafkaConsumer(bootstrap_servers=world.drain.bootstrap_servers)
    await consumer.start()
    decided = confirmed = 0
    try:
        partitions = await partitions_of(world.drain.bootstrap_servers, world.drain.topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with await connect(world.base_db_url) as conn:
            event_id = await create_bare_event(conn, "bench naive", world.sizes.backlog, 1)
            await conn.commit()
            await analyze(world.base_db_url)
            say("naive", f"deciding {n} bookings, one transaction each")
            with world.monitor.measure("naive"):
                started = time.perf_counter()
                while decided < n and time.perf_counter() - started < 300:
                    got = await consumer.getmany(timeout_ms=1000, max_records=min(500, n - decided))
                    for record in (r for records in got.values() for r in records):
                        request = decode_command(record.value)
                        assert isinstance(request, BookingRequested)
                        confirmed += await naive_decide(conn, event_id, request)
                        decided += 1
                seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    result = NaiveResult(decided, confirmed, seconds, decided / seconds)
    say("naive", f"{result.decisions_per_s:,.0f} decisions/s ({decided} in {seconds:.2f} s)")
    return result
