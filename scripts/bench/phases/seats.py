"""Phase 11: choosing seats, on a topic and group of their own. 11a and 11b are timed as
phase 5 times decisions (a burst worker, spawn to exit), so the rates compare within the run.

11a specific seats: requests each naming 2 of the same 100 front-row seats, nearly all of
    them refused SEAT_TAKEN by the gate.
11b together: groups of 4 placed side by side in one section of a large seat map, best
    available first.
11c seat map read: GET /api/events/{id}/seats of 11b's map on the real API, as a poller that
    has the current version (If-None-Match: 304), against the HTTP ceiling; 11d the same
    without the ETag (the whole map each time), for its cost."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx

from scripts.bench.phases.finalisation import burst_worker, decided_batches
from scripts.bench.phases.http_ceiling import phase_http_ceiling
from scripts.bench.progress import say
from scripts.bench.world import World, connect, create_bare_event, produce
from scripts.bench.wrk import Get, WrkResult, measured_wrk
from shared.contracts import BookingRequested, new_booking_id
from shared.seating import Layout, SectionSpec

FRONT_ROW = 100
GROUP = 4
ROW = 100  # seats per row of 11b's section


@dataclass
class ChoiceResult:
    requests: int
    decided: int
    confirmed: int
    seats_sold: int
    exit_code: int
    wall_s: float
    decisions_per_s: float  # decided / wall time from spawn to exit, as phase 5
    worker_cpu_pct: float
    created_s: float  # creating the event and its seats


@dataclass
class SeatMapRead:
    seats: int
    body_bytes: int
    with_etag: WrkResult  # 304s
    whole: WrkResult  # 200s, the whole map each time
    ceiling_before: WrkResult
    ceiling_after: WrkResult


async def _event(world: World, name: str, layout: Layout, limit: int) -> tuple[int, float]:
    started = time.monotonic()
    async with await connect(world.settings.database_url) as conn:
        event_id = await create_bare_event(conn, name, layout.capacity, limit, layout=layout)
    return event_id, time.monotonic() - started


async def _decide(
    world: World, phase: str, event_id: int, requests: list[BookingRequested], created_s: float
) -> ChoiceResult:
    """Produce the requests, then time a burst worker deciding them."""
    rate = await produce(world.seats, requests)
    say(phase, f"{len(requests)} requests produced at {rate:,.0f} msgs/s; worker deciding")
    ended = await burst_worker(world, phase, f"worker-{phase}", world.seats)
    rows, seats_taken = await decided_batches(world, event_id)
    decided = sum(r["n"] for r in rows)
    result = ChoiceResult(
        requests=len(requests),
        decided=decided,
        confirmed=sum(r["ok"] for r in rows),
        seats_sold=seats_taken,
        exit_code=ended.code,
        wall_s=ended.wall_s,
        decisions_per_s=decided / ended.wall_s,
        worker_cpu_pct=100 * ended.cpu_s / ended.wall_s,
        created_s=created_s,
    )
    say(
        phase,
        f"{decided} decided ({result.confirmed} confirmed, {result.seats_sold} seats) in "
        f"{ended.wall_s:.2f} s (exit {ended.code}): {result.decisions_per_s:,.0f}/s",
    )
    return result


async def phase_specific(world: World) -> ChoiceResult:
    """11a. Every request names 2 seats of one 100-seat row: a storm for the same seats."""
    layout = Layout.from_specs([SectionSpec("FRONT", 1, FRONT_ROW, price_cents=25_000)])
    event_id, created_s = await _event(world, "bench front row", layout, 2)
    rng, now_ms = random.Random(11), int(time.time() * 1000)
    requests = [
        BookingRequested(
            new_booking_id(),
            event_id,
            f"fan-{world.run_id}-{i}",
            2,
            now_ms,
            seats=tuple(sorted(rng.sample(range(1, FRONT_ROW + 1), 2))),
        )
        for i in range(world.sizes.contended)
    ]
    return await _decide(world, "specific-seats", event_id, requests, created_s)


async def phase_together(world: World) -> tuple[int, ChoiceResult]:
    """11b. Groups of 4 asking for seats together in one section of a large map."""
    seats = world.sizes.seat_map
    layout = Layout.from_specs([SectionSpec("ARENA", seats // ROW, ROW, price_cents=9_000)])
    event_id, created_s = await _event(world, "bench arena", layout, GROUP)
    say("together", f"{layout.capacity:,} seats created in {created_s:.2f} s")
    now_ms = int(time.time() * 1000)
    requests = [
        BookingRequested(
            new_booking_id(),
            event_id,
            f"group-{world.run_id}-{i}",
            GROUP,
            now_ms,
            section="ARENA",
            together=True,
        )
        for i in range(world.sizes.groups)
    ]
    return event_id, await _decide(world, "together", event_id, requests, created_s)


async def phase_seat_map_read(world: World, event_id: int) -> SeatMapRead:
    """11c/11d. The seat map 11b's worker published, read through the real API."""
    if world.pipeline.api is None:  # --only seats
        world.pipeline.start_api()
        assert world.pipeline.api is not None
        world.monitor.watch("api", world.pipeline.api.pid)
        await world.pipeline.wait_ready(timeout_s=60, path="/ready")
    path = f"/api/events/{event_id}/seats"
    async with httpx.AsyncClient(base_url=world.pipeline.url) as http:
        first = await http.get(path)
    if first.status_code != 200 or "etag" not in first.headers:
        raise RuntimeError(f"seat map: {first.status_code} {first.text[:300]}")
    etag = first.headers["etag"]
    say("seat-map", f"{len(first.content):,} bytes, ETag {etag}")
    before = await phase_http_ceiling(world)
    s = world.sizes
    with_etag = await measured_wrk(
        world, "seat-map-etag", world.pipeline.url, event_id, "304", s.http_s, "api",
        get=Get(path, etag),
    )  # fmt: skip
    after = await phase_http_ceiling(world)
    whole = await measured_wrk(
        world, "seat-map-whole", world.pipeline.url, event_id, "200", s.http_s, "api",
        get=Get(path),
    )  # fmt: skip
    return SeatMapRead(world.sizes.seat_map, len(first.content), with_etag, whole, before, after)
