"""Phase 3: the storage ceiling (raw COPY in batches of the worker's size, one transaction
each) and, for attribution, the worker's Finalizer called in this process."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import LiteralString, cast

from psycopg import sql

from consumer.finalize import Finalizer
from scripts.bench.progress import say
from scripts.bench.world import (
    Conn,
    World,
    analyze,
    batches,
    bench_queries,
    connect,
    create_bare_event,
)
from shared.config import Settings
from shared.contracts import BookingRequested, new_booking_id
from shared.db import open_pool
from shared.decisions import DecisionCache
from shared.inventory import Inventory
from shared.redis_clients import open_redis


@dataclass
class CeilingResult:
    rows: int
    batch_size: int
    batches: int
    seconds: float
    rows_per_s: float
    what: str


def copy_text(event_id: int, count: int, tag: str) -> list[bytes]:
    """COPY text rows shaped like the worker's (confirmed bookings), one per line."""
    now = dt.datetime.now(dt.UTC).isoformat()
    return [
        f"{new_booking_id()}\t{event_id}\t{tag}-{i}\t1\tCONFIRMED\t\\N\t{now}\t{now}\n".encode()
        for i in range(count)
    ]


async def copy_batches(conn: Conn, sql: LiteralString, rows: list[bytes], size: int) -> float:
    """COPY `rows` in batches of `size`, one transaction each; returns seconds."""
    started = time.perf_counter()
    for chunk in batches(rows, size):
        async with conn.transaction(), conn.cursor() as cur, cur.copy(sql) as copy:
            await copy.write(b"".join(chunk))
    return time.perf_counter() - started


async def phase_storage_ceiling(world: World) -> tuple[CeilingResult, CeilingResult]:
    """3. Raw COPY into a bookings-like table (same columns, checks, indexes and foreign keys,
    empty at start) in batches of the worker's batch size, one transaction each. Then, for
    attribution, the real finaliser in this process on the same batches: its Redis and
    PostgreSQL work without Kafka or the worker loop (the baseline database, own prefix)."""
    n, size = world.sizes.backlog, world.settings.batch_max
    async with await connect(world.base_db_url) as conn:
        await create_raw_table(conn)
        raw_event = await create_bare_event(conn, "bench raw copy", 1, 1)
        inproc_event = await create_bare_event(conn, "bench in-process finaliser", n, 1)
        await conn.commit()
        await analyze(world.base_db_url)
        rows = copy_text(raw_event, n, "raw")
        say("storage", f"COPY {n} rows into bookings_raw, batches of {size}")
        with world.monitor.measure("storage-raw"):
            seconds = await copy_batches(conn, bench_queries.copy_raw, rows, size)
    raw = CeilingResult(n, size, -(-n // size), seconds, n / seconds, "COPY, txn per batch")
    say("storage", f"raw COPY: {raw.rows_per_s:,.0f} rows/s")
    say("storage", f"in-process finaliser: Finalizer.decide on {n} bookings")
    with world.monitor.measure("finaliser-in-process"):
        seconds = await finaliser_in_process(world.base_settings, inproc_event, n, size)
    inproc = CeilingResult(
        n, size, -(-n // size), seconds, n / seconds, "Finalizer.decide: Redis + PostgreSQL"
    )
    say("storage", f"in-process finaliser: {inproc.rows_per_s:,.0f} decisions/s")
    return raw, inproc


async def create_raw_table(conn: Conn) -> None:
    """bookings_raw: a copy of the current `bookings` table with its columns, checks,
    indexes and foreign keys (LIKE copies all but the foreign keys, added one by one), so
    the ceiling follows the schema as migrations change it."""
    await conn.execute(bench_queries.create_raw_table)
    for fk in await (await conn.execute(bench_queries.foreign_keys)).fetchall():
        # The definition comes from the server's own catalog, not from any input.
        definition = cast(LiteralString, fk["def"])
        await conn.execute(sql.SQL("ALTER TABLE bookings_raw ADD {}").format(sql.SQL(definition)))


async def finaliser_in_process(settings: Settings, event_id: int, n: int, size: int) -> float:
    """The worker's own Finalizer, called directly on batches of one-seat requests for one
    event with `n` seats; returns seconds. Only public calls, so it follows the hot path."""
    pool = open_pool(settings, max_size=4)
    await pool.open()
    client = open_redis(settings)
    inventory = Inventory(client, settings.redis_prefix)
    cache = DecisionCache(client, settings.redis_prefix, settings.status_cache_ttl_s)
    finalizer = Finalizer(settings, pool, inventory, cache)
    now_ms = int(time.time() * 1000)
    requests = [
        BookingRequested(new_booking_id(), event_id, f"inproc-{i}", 1, now_ms) for i in range(n)
    ]
    try:
        await inventory.open(event_id, n)
        started = time.perf_counter()
        for chunk in batches(requests, size):
            await finalizer.finalize(chunk)
        return time.perf_counter() - started
    finally:
        await client.aclose()
        await pool.close()
