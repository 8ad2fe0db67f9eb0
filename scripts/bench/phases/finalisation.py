"""Phase 5: the real worker draining a backlog for one hot event, produced beforehand
straight into Kafka; the ledger's decided_at tells when each batch was decided."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from scripts.bench.progress import say
from scripts.bench.world import World, bench_queries, connect, produce
from scripts.pipeline import ChildExit, wait_child
from shared.config import Settings
from shared.contracts import BookingRequested, new_booking_id


async def prefill_backlog(world: World, twin: str = "drain") -> float:
    """Produce the backlog straight into the drain topic (or its `quiet` twin's): one hot
    event, distinct users, one seat each. Returns messages/s."""
    settings = world.quiet if twin == "quiet" else world.drain
    say("finalisation", f"producing {world.sizes.backlog} requests into {settings.topic}")
    event_id, now_ms = world.events[twin], int(time.time() * 1000)
    backlog = [
        BookingRequested(new_booking_id(), event_id, f"{twin}-{world.run_id}-{i}", 1, now_ms)
        for i in range(world.sizes.backlog)
    ]
    rate = await produce(settings, backlog)
    say("finalisation", f"backlog produced at {rate:,.0f} msgs/s")
    return rate


async def burst_worker(world: World, phase: str, name: str, settings: Settings) -> ChildExit:
    """A worker in burst mode (--stop-when-idle) on `settings`' topic, from spawn to exit,
    with its CPU accounted to `phase` under `name`."""
    with world.monitor.measure(phase) as usage:
        spawned = time.monotonic()
        proc = world.pipeline.start_worker("--stop-when-idle", settings=settings)
        world.monitor.watch(name, proc.pid)
        ended = await wait_child(proc, world.sizes.drain_timeout_s, started=spawned)
        usage.cpu_pct[name] = 100 * ended.cpu_s / ended.wall_s
    world.monitor.unwatch(name)
    return ended


async def decided_batches(world: World, event_id: int) -> tuple[list[dict[str, Any]], int]:
    """The event's batches (decided_at, n, ok) in order, and how many of its seats are taken."""
    async with await connect(world.settings.database_url) as conn:
        rows = await (
            await conn.execute(bench_queries.batch_times, {"event_id": event_id})
        ).fetchall()
        seats = await (
            await conn.execute(bench_queries.seats_taken, {"event_id": event_id})
        ).fetchone()
    return [dict(r) for r in rows], seats["n"] if seats else 0


@dataclass
class DrainResult:
    backlog: int
    prefill_msgs_per_s: float
    decided: int
    confirmed: int
    seats_assigned: int
    exit_code: int
    wall_s: float
    decisions_per_s: float  # decided / wall time from spawn to exit
    startup_s: float  # spawn -> first batch's decision time
    batches: int
    steady_decisions_per_s: float  # between the first and the last batch
    # Time between consecutive batches' decisions: a long one is a stall (a fetch refill,
    # a checkpoint), which the rates alone do not show.
    gap_median_ms: float
    gap_max_ms: float
    worker_cpu_pct: float


async def phase_finalisation(world: World, prefill_rate: float, twin: str = "drain") -> DrainResult:
    """5. The real worker drains the backlog and exits (--stop-when-idle). Every batch has
    one `decided_at`, so the ledger tells when each batch was decided. With `twin="quiet"`,
    the same on the twin backlog with the booking-events outbox off (12c)."""
    event_id = world.events[twin]
    phase = "finalisation" if twin == "drain" else "outbox-off"
    settings = world.quiet if twin == "quiet" else world.drain
    say(phase, f"worker draining {world.sizes.backlog} requests for event {event_id}")
    spawned_wall = time.time()
    ended = await burst_worker(world, phase, f"worker-{twin}", settings)
    rows, seats_taken = await decided_batches(world, event_id)
    decided = sum(r["n"] for r in rows)
    first = rows[0]["decided_at"].timestamp() if rows else spawned_wall
    last = rows[-1]["decided_at"].timestamp() if rows else spawned_wall
    steady = (decided - rows[-1]["n"]) / (last - first) if len(rows) > 1 else 0.0
    times = [r["decided_at"].timestamp() for r in rows]
    gaps = sorted(1000 * (b - a) for a, b in itertools.pairwise(times)) or [0.0]
    result = DrainResult(
        backlog=world.sizes.backlog,
        prefill_msgs_per_s=prefill_rate,
        decided=decided,
        confirmed=sum(r["ok"] for r in rows),
        seats_assigned=seats_taken,
        exit_code=ended.code,
        wall_s=ended.wall_s,
        decisions_per_s=decided / ended.wall_s,
        startup_s=first - spawned_wall,
        batches=len(rows),
        steady_decisions_per_s=steady,
        gap_median_ms=gaps[len(gaps) // 2],
        gap_max_ms=gaps[-1],
        worker_cpu_pct=100 * ended.cpu_s / ended.wall_s,
    )
    say(
        phase,
        f"{decided} decided in {ended.wall_s:.2f} s (exit {ended.code}): "
        f"{result.decisions_per_s:,.0f}/s incl. startup ({result.startup_s:.2f} s), "
        f"{steady:,.0f}/s steady over {len(rows)} batches",
    )
    return result
