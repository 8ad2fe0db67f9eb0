"""Phases 9 and 10: the booking lifecycle at scale, on a topic and group of their own.

 9. payments: a backlog of payments for one event's held bookings, confirmed by the real
    worker in burst mode, timed as phase 5 times decisions (spawn to exit), so the two rates
    compare within the run.
10. expiry: thousands of holds whose deadlines are one and the same moment; how long after
    it until every one is EXPIRED in the ledger and its stock is back at the gate, with the
    worker idle (no new commands: the expiry sweep alone finds them)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

from scripts.bench.progress import say
from scripts.bench.world import World, bench_queries, connect, create_bare_event, produce
from scripts.pipeline import wait_child
from scripts.waiting import poll_until
from shared.contracts import BookingRequested, PaymentReceived, new_booking_id
from shared.inventory import Inventory
from shared.redis_clients import open_redis

HOLD_S = 3600  # holds that no clock runs out during a phase; phase 10 sets their deadline
POLL_S = 0.01  # how finely phase 10 watches the ledger and the gate


@dataclass
class PaymentsResult:
    holds: int
    paid: int  # CONFIRMED when the worker exited
    exit_code: int
    wall_s: float
    payments_per_s: float  # paid / wall time from spawn to exit, as phase 5
    batches: int
    steady_payments_per_s: float  # between the first and the last batch
    worker_cpu_pct: float


@dataclass
class ExpiryResult:
    holds: int
    expired: int
    ledger_s: float | None  # deadline -> every hold EXPIRED in PostgreSQL
    gate_s: float | None  # deadline -> the counter back at capacity, no release unsettled
    counter_end: int | None

    @property
    def all_back_s(self) -> float | None:
        if self.ledger_s is None or self.gate_s is None:
            return None
        return max(self.ledger_s, self.gate_s)


def _requests(world: World, event_id: int, count: int, who: str) -> list[BookingRequested]:
    now_ms = int(time.time() * 1000)
    return [
        BookingRequested(new_booking_id(), event_id, f"{who}-{world.run_id}-{i}", 1, now_ms)
        for i in range(count)
    ]


async def _held_event(world: World, name: str, count: int) -> tuple[int, list[BookingRequested]]:
    """An event of `count` seats, all held by one booking each (decided by a burst worker)."""
    async with await connect(world.settings.database_url) as conn:
        event_id = await create_bare_event(conn, name, count, 1, hold_seconds=HOLD_S)
    requests = _requests(world, event_id, count, name.split()[-1])
    await produce(world.holds, requests)
    proc = world.pipeline.start_worker("--stop-when-idle", settings=world.holds)
    ended = await wait_child(proc, world.sizes.drain_timeout_s, started=time.monotonic())
    held = await _count(world, event_id, "HELD")
    if ended.code != 0 or held != count:
        raise RuntimeError(f"{name}: {held} of {count} held, worker exit {ended.code}")
    return event_id, requests


async def _count(world: World, event_id: int, status: str) -> int:
    async with await connect(world.settings.database_url) as conn:
        cur = await conn.execute(
            bench_queries.status_count, {"event_id": event_id, "status": status}
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def phase_payments(world: World) -> PaymentsResult:
    """9. One payment per hold, produced beforehand; the real worker confirms them and
    exits once the topic is drained."""
    count = world.sizes.payments
    say("payments", f"holding {count} seats of one event (hold_seconds {HOLD_S})")
    event_id, held = await _held_event(world, "bench paid holds", count)
    now_ms = int(time.time() * 1000)
    payments = [
        PaymentReceived(r.booking_id, event_id, "dev", f"bench-{r.booking_id}", now_ms)
        for r in held
    ]
    rate = await produce(world.holds, payments)
    say("payments", f"{count} payments produced at {rate:,.0f} msgs/s; worker confirming")
    with world.monitor.measure("payments") as usage:
        spawned = time.monotonic()
        proc = world.pipeline.start_worker("--stop-when-idle", settings=world.holds)
        world.monitor.watch("worker-payments", proc.pid)
        ended = await wait_child(proc, world.sizes.drain_timeout_s, started=spawned)
        usage.cpu_pct["worker-payments"] = 100 * ended.cpu_s / ended.wall_s
    world.monitor.unwatch("worker-payments")
    async with await connect(world.settings.database_url) as conn:
        cur = await conn.execute(bench_queries.payment_times, {"event_id": event_id})
        rows = await cur.fetchall()
    paid = sum(r["n"] for r in rows)
    steady = 0.0
    if len(rows) > 1:
        span = (rows[-1]["paid_at"] - rows[0]["paid_at"]).total_seconds()
        steady = (paid - rows[-1]["n"]) / span
    result = PaymentsResult(
        holds=count,
        paid=paid,
        exit_code=ended.code,
        wall_s=ended.wall_s,
        payments_per_s=paid / ended.wall_s,
        batches=len(rows),
        steady_payments_per_s=steady,
        worker_cpu_pct=100 * ended.cpu_s / ended.wall_s,
    )
    say(
        "payments",
        f"{paid} confirmed in {ended.wall_s:.2f} s (exit {ended.code}): "
        f"{result.payments_per_s:,.0f}/s incl. startup, {steady:,.0f}/s steady "
        f"over {len(rows)} batches",
    )
    return result


async def phase_expiry(world: World) -> ExpiryResult:
    """10. Hold every seat of an event, move every deadline to one moment a little ahead,
    and watch the ledger and the gate until all of it is back, with a worker running that
    has nothing else to do."""
    count = world.sizes.expiring
    say("expiry", f"holding {count} seats of one event")
    event_id, _ = await _held_event(world, "bench expiring holds", count)
    redis = open_redis(world.holds)
    inventory = Inventory(redis, world.holds.redis_prefix)
    proc = world.pipeline.start_worker(settings=world.holds)
    try:
        # Started, in the group, and idle: the counter exists and nothing is in flight.
        async def idle() -> bool:
            snap = await inventory.snapshot(event_id)
            started = "worker started:" in world.pipeline.logs[proc.pid].read_text()
            return snap.available == 0 and snap.held == 0 and started

        if not await poll_until(idle, 60.0):
            raise RuntimeError("expiry: the worker did not start, or the gate is not idle")
        async with await connect(world.settings.database_url) as conn:
            cur = await conn.execute(bench_queries.align_deadlines, {"event_id": event_id})
            row = await cur.fetchone()
            await conn.commit()
        assert row is not None
        deadline: dt.datetime = row["deadline"]
        say("expiry", f"{count} holds expire at {deadline:%H:%M:%S.%f}; watching")
        with world.monitor.measure("expiry"):
            ledger_s, gate_s = await _watch(world, inventory, event_id, count, deadline)
        expired = await _count(world, event_id, "EXPIRED")
        counter = await inventory.available(event_id)
    finally:
        world.pipeline.terminate(proc)
        await redis.aclose()
    result = ExpiryResult(count, expired, ledger_s, gate_s, counter)
    say(
        "expiry",
        f"{expired} of {count} expired; ledger {_s(ledger_s)}, gate {_s(gate_s)} after the "
        f"deadline; counter {counter}",
    )
    return result


async def _watch(
    world: World, inventory: Inventory, event_id: int, count: int, deadline: dt.datetime
) -> tuple[float | None, float | None]:
    """Seconds from the deadline until the ledger shows every hold EXPIRED, and until the
    gate's counter is back at `count` with no release left unsettled (None: not in 10 s)."""
    ledger_s: float | None = None
    gate_s: float | None = None
    until = deadline.timestamp() + 10.0
    async with await connect(world.settings.database_url) as conn:
        await conn.set_autocommit(True)
        while (ledger_s is None or gate_s is None) and time.time() < until:
            if gate_s is None:
                snap = await inventory.snapshot(event_id)
                if snap.available == count and snap.releasing == 0 and snap.held == 0:
                    gate_s = time.time() - deadline.timestamp()
            if ledger_s is None:
                cur = await conn.execute(
                    bench_queries.status_count, {"event_id": event_id, "status": "EXPIRED"}
                )
                row = await cur.fetchone()
                if row is not None and row["n"] == count:
                    ledger_s = time.time() - deadline.timestamp()
            await asyncio.sleep(POLL_S)
    return ledger_s, gate_s


def _s(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds:.2f} s"
