"""Phase 12, live updates: (a) one API process holding thousands of open Server-Sent Events
streams, its memory per stream and its intake while they are open; (b) how soon a decision
reaches the stream of a buyer watching it during the flash sale (`Watchers`, run inside
phase 6); (c) the finalisation with the booking-events outbox off, against phase 5's."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from dataclasses import dataclass, field

from scripts.bench.paced import percentile
from scripts.bench.proc import read_proc
from scripts.bench.progress import say
from scripts.bench.world import World
from scripts.bench.wrk import WrkResult, measured_wrk
from scripts.loadgen.client import local_target
from scripts.loadgen.streams import Stream

OPEN_AT_ONCE = 200  # streams being opened concurrently


@dataclass
class StreamsResult:
    streams: int
    opened: int  # with their first availability event received
    still_open: int  # after the intake run
    open_s: float
    rss_before_kib: int
    rss_after_kib: int
    intake_without: WrkResult
    intake_with: WrkResult

    @property
    def kib_per_stream(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(self.opened, 1)

    @property
    def intake_ratio(self) -> float:
        return self.intake_with.rps / self.intake_without.rps


async def phase_streams(world: World) -> StreamsResult:
    """12a. Intake (wrk, as phase 2) without streams; then `sizes.streams` availability
    streams of an idle event opened on the same API process, each read to its first event,
    and intake again while they stay open."""
    api = world.pipeline.api
    assert api is not None
    url, event = world.pipeline.url, world.events["streams"]
    seconds, count = world.sizes.http_s, world.sizes.streams
    without = await measured_wrk(
        world, "streams", url, world.events["intake"], "202", seconds, "api"
    )
    before = read_proc(api.pid)
    target, path = local_target(url), f"/api/events/{event}/stream"
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def one() -> Stream | None:
        async with gate:
            try:
                stream = await asyncio.wait_for(Stream.open(target, path), 30)
                return stream if await asyncio.wait_for(stream.data(), 30) else None
            except (OSError, ValueError, TimeoutError):
                return None

    say("streams", f"opening {count} availability streams on the API process")
    started = time.monotonic()
    opened = [s for s in await asyncio.gather(*(one() for _ in range(count))) if s is not None]
    open_s = time.monotonic() - started
    await asyncio.sleep(1.0)  # the API settles its allocations before RSS is read
    after = read_proc(api.pid)
    say("streams", f"{len(opened)} open in {open_s:.1f} s; intake with them open")
    try:
        with_streams = await measured_wrk(
            world, "streams", url, world.events["intake"], "202", seconds, "api"
        )
        still = sum(1 for s in opened if not s.ended)
    finally:
        for stream in opened:
            stream.close()
    result = StreamsResult(
        streams=count,
        opened=len(opened),
        still_open=still,
        open_s=open_s,
        rss_before_kib=before.rss_kib if before else 0,
        rss_after_kib=after.rss_kib if after else 0,
        intake_without=without,
        intake_with=with_streams,
    )
    say(
        "streams",
        f"{result.kib_per_stream:.1f} KiB per stream; intake {with_streams.rps:,.0f}/s with, "
        f"{without.rps:,.0f}/s without ({result.intake_ratio:.0%})",
    )
    return result


@dataclass
class Watchers:
    """12b. During the flash sale, every `every`-th accepted booking's stream is opened at
    once (up to `limit`); a stream that saw PENDING first times the decision's arrival
    against its `decided_at` (the worker's clock is this machine's)."""

    url: str
    every: int
    limit: int
    delays_s: list[float] = field(default_factory=list)
    opened_late: int = 0  # the decision was made before the stream opened: not timed
    failed: int = 0
    _seen: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def accepted(self, body: bytes) -> None:
        """The paced client got a 202 with this body."""
        self._seen += 1
        if self._seen % self.every or len(self._tasks) + len(self.delays_s) >= self.limit:
            return
        booking_id = json.loads(body)["booking_id"]
        task = asyncio.create_task(self._watch(booking_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, booking_id: str) -> None:
        path = f"/api/bookings/{booking_id}/events"
        try:
            stream = await asyncio.wait_for(Stream.open(local_target(self.url), path), 30)
        except (OSError, ValueError, TimeoutError):
            self.failed += 1
            return
        try:
            first = True
            while (data := await asyncio.wait_for(stream.data(), 120)) is not None:
                view = json.loads(data)
                if view["status"] != "PENDING":
                    if first:
                        self.opened_late += 1
                    else:
                        decided = dt.datetime.fromisoformat(view["decided_at"]).timestamp()
                        self.delays_s.append(time.time() - decided)
                    return
                first = False
        except (OSError, TimeoutError):
            self.failed += 1
        finally:
            stream.close()

    async def finish(self, timeout_s: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def p99_ms(self) -> float:
        return percentile(self.delays_s, 0.99) * 1000 if self.delays_s else float("nan")

    @property
    def p50_ms(self) -> float:
        return percentile(self.delays_s, 0.5) * 1000 if self.delays_s else float("nan")
