"""Phase 6: the flash sale, API and worker together, requests offered at a steady rate by
the paced client for an event with far fewer seats than requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import psycopg
from aiokafka import AIOKafkaConsumer

from scripts.bench.paced import Paced, paced_fire, percentile
from scripts.bench.phases.intake import mean_ms, produce_totals
from scripts.bench.phases.live import Watchers
from scripts.bench.progress import say
from scripts.bench.world import Conn, World, api_client, bench_queries, connect, partitions_of
from scripts.loadgen.api import settled_audit
from scripts.loadgen.attack import booking_bodies
from scripts.loadgen.client import Client, local_target
from scripts.waiting import poll_until
from shared.config import Settings


async def skip_to_end(settings: Settings) -> None:
    """Commit the group's offsets at the topic's end, so the worker decides only what comes
    next, not the intake phase's requests (which went to the same topic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = await partitions_of(settings.bootstrap_servers, settings.topic)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


async def start_live_worker(world: World) -> None:
    """The flash sale's worker; ready once it has decided a booking for the warm-up event."""
    await skip_to_end(world.settings)
    proc = world.pipeline.start_worker()
    world.monitor.watch("worker", proc.pid)
    client = await api_client(world.pipeline.url)
    body = b'{"event_id":%d,"user_id":"warm-%s","quantity":1}' % (
        world.events["warm"],
        world.run_id.encode(),
    )
    try:
        status, raw = await client.request("POST", "/api/bookings", body)
        if status != 202:
            raise RuntimeError(f"warm-up booking refused: {status} {raw[:300]!r}")
        booking_id = json.loads(raw)["booking_id"]

        async def decided() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            _, view = await client.get_json(f"/api/bookings/{booking_id}")
            return isinstance(view, dict) and view.get("status") not in (None, "PENDING")

        if not await poll_until(decided, timeout_s=60):
            raise TimeoutError("the worker did not decide the warm-up booking within 60 s")
    finally:
        client.close()


@dataclass
class FlashResult:
    requests: int
    seats: int
    offered_rps: float
    achieved_rps: float
    statuses: dict[str, int]
    sold_out_fast_path: int  # 409s answered by the API from the gate
    http_p50_ms: float
    http_p99_ms: float
    max_dispatch_lag_ms: float
    accepted: int
    decided: int
    confirmed: int
    last_202_to_all_decided_s: float | None  # until the ledger held every accepted booking
    last_202_to_last_decided_at_s: float | None  # max(decided_at) - last 202
    decision_p50_ms: float
    decision_p99_ms: float
    decision_max_ms: float
    audit_verdict: str
    loadgen_cpu_pct: float
    kafka_ack_mean_ms: float | None
    # To tell a stall's cause: when the slowest decision's request came, and how many
    # PostgreSQL checkpoints ran during the sale (None: the server's view was unreadable).
    worst_at_s: float = 0.0  # seconds after the sale's first request
    checkpoints: int | None = None
    # 12b: buyers paying for a hold during the sale, from paid_at to CONFIRMED on their stream
    streams_timed: int = 0
    streams_failed: dict[str, int] = field(default_factory=dict)
    stream_p50_ms: float = float("nan")
    stream_p99_ms: float = float("nan")


async def checkpoint_count(conn: Conn) -> int | None:
    try:
        row = await (await conn.execute(bench_queries.checkpoints)).fetchone()
    except psycopg.Error:
        return None
    return int(row["n"]) if row else None


class DecidedWatcher:
    """Polls the ledger's count of the event's bookings every 50 ms from the start of the
    firing, and remembers when each count was first seen, so "all decided" is timed even
    when the last decision lands while the client is still sending (409s)."""

    def __init__(self, conn: Conn, event_id: int) -> None:
        self._conn = conn
        self._event_id = event_id
        self.seen: list[tuple[float, int]] = []  # (time.time(), count) on every change

    async def run(self) -> None:
        while True:
            cur = await self._conn.execute(
                bench_queries.decided_count, {"event_id": self._event_id}
            )
            row = await cur.fetchone()
            count = row["n"] if row else 0
            if not self.seen or count != self.seen[-1][1]:
                self.seen.append((time.time(), count))
            await asyncio.sleep(0.05)

    def reached(self, target: int) -> float | None:
        """When the count first reached `target` (time.time()), if it has."""
        return next((t for t, n in self.seen if n >= target), None)

    async def wait_for(self, target: int, timeout_s: float) -> float | None:
        """When the count reached `target`, or None after `timeout_s`; a progress line every
        5 s."""
        next_report = time.monotonic() + 5

        async def reached() -> float | None:
            nonlocal next_report
            if time.monotonic() >= next_report:
                next_report += 5
                say("flash-sale", f"{self.seen[-1][1] if self.seen else 0}/{target} decided")
            return self.reached(target)

        return await poll_until(reached, timeout_s, interval_s=0.05)


async def fire_and_watch(
    world: World, client: Client, conn: Conn, rate: float, streams: Watchers
) -> tuple[Paced, float | None]:
    """The paced firing, with the ledger watched throughout and buyers of another event
    watching their booking's stream while it lasts; returns what the client saw and when the
    ledger held every accepted booking (None if not within the timeout)."""
    s, event_id = world.sizes, world.events["flash"]
    watcher = DecidedWatcher(conn, event_id)
    watching = asyncio.create_task(watcher.run())
    fired = asyncio.Event()
    streaming = asyncio.create_task(streams.run(fired))
    try:
        with world.monitor.measure("flash-sale", bench_is_loadgen=True):
            bodies = booking_bodies(event_id, s.flash_requests)
            paced = await paced_fire(client, bodies, rate, "flash-sale")
            fired.set()
            accepted = paced.statuses["202"]
            say("flash-sale", f"fired: {dict(paced.statuses)}; waiting for {accepted} decisions")
            all_decided = await watcher.wait_for(accepted, s.decide_timeout_s)
            await streaming
    finally:
        fired.set()
        for task in (watching, streaming):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return paced, all_decided


async def phase_flash(world: World, intake_rps: float) -> FlashResult:
    """6. API + worker; requests for the flash event offered at half the intake rate."""
    s, event_id = world.sizes, world.events["flash"]
    await start_live_worker(world)
    rate = max(intake_rps / 2, 1.0)
    say("flash-sale", f"{s.flash_requests} requests for {s.flash_seats} seats at {rate:,.0f}/s")
    client = Client(local_target(world.pipeline.url), s.paced_connections, timeout_s=30.0)
    streams = Watchers(world.pipeline.url, world.events["watched"], s.watched)
    async with await connect(world.settings.database_url) as conn:
        await conn.set_autocommit(True)
        try:
            before = await produce_totals(world.pipeline.url)
            checkpoints_before = await checkpoint_count(conn)
            paced, all_decided = await fire_and_watch(world, client, conn, rate, streams)
            checkpoints_after = await checkpoint_count(conn)
            ack_ms = mean_ms(before, await produce_totals(world.pipeline.url))
            row = await (
                await conn.execute(bench_queries.decision_latency, {"event_id": event_id})
            ).fetchone()
            count = await (
                await conn.execute(bench_queries.decided_count, {"event_id": event_id})
            ).fetchone()
            audit = await settled_audit(
                client, world.settings.admin_token, event_id, time.monotonic() + 10
            )
        finally:
            client.close()
    assert row is not None and count is not None
    last_202 = paced.last_202
    return FlashResult(
        requests=s.flash_requests,
        seats=s.flash_seats,
        offered_rps=rate,
        achieved_rps=sum(paced.statuses.values()) / paced.seconds,
        statuses=dict(paced.statuses),
        sold_out_fast_path=paced.statuses["409"],
        http_p50_ms=percentile(paced.latencies_s, 0.5) * 1000,
        http_p99_ms=percentile(paced.latencies_s, 0.99) * 1000,
        max_dispatch_lag_ms=paced.max_dispatch_lag_ms,
        accepted=paced.statuses["202"],
        decided=count["n"],
        confirmed=row["confirmed"] or 0,
        last_202_to_all_decided_s=max(all_decided - last_202, 0.0) if all_decided else None,
        last_202_to_last_decided_at_s=(
            row["last_decided"] - last_202 if row["last_decided"] else None
        ),
        decision_p50_ms=row["p50"] or 0.0,
        decision_p99_ms=row["p99"] or 0.0,
        decision_max_ms=row["worst"] or 0.0,
        audit_verdict=str(audit.get("verdict")),
        loadgen_cpu_pct=100 * paced.cpu_s / paced.seconds,
        kafka_ack_mean_ms=ack_ms,
        worst_at_s=row["worst_at_s"] or 0.0,
        streams_timed=streams.timed,
        streams_failed=dict(streams.failed),
        stream_p50_ms=streams.p50_ms,
        stream_p99_ms=streams.p99_ms,
        checkpoints=(
            checkpoints_after - checkpoints_before
            if checkpoints_before is not None and checkpoints_after is not None
            else None
        ),
    )


def flash_line(r: FlashResult) -> str:
    gap = f"{r.last_202_to_all_decided_s:.2f} s" if r.last_202_to_all_decided_s else "TIMEOUT"
    return (
        f"{r.achieved_rps:,.0f}/s of {r.offered_rps:,.0f}/s offered, {r.statuses}, "
        f"last 202 -> all decided {gap}, request->decision p50 {r.decision_p50_ms:.0f} ms "
        f"p99 {r.decision_p99_ms:.0f} ms, audit {r.audit_verdict}"
    )
