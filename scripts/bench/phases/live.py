"""Phase 12, live updates: (a) one API process holding thousands of open Server-Sent Events
streams, its memory per stream and its intake while they are open; (b) how soon a decision
reaches the stream of a buyer watching it during the flash sale (`Watchers`, run beside
phase 6's firing); (c) the finalisation with the booking-events outbox off, against phase 5's."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from scripts.bench.paced import percentile
from scripts.bench.proc import read_proc
from scripts.bench.progress import say
from scripts.bench.world import World
from scripts.bench.wrk import WrkResult, measured_wrk
from scripts.loadgen.client import Client, local_target
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
    """12b. While the flash sale fires, buyers of a second event, one with holds, each book,
    open their booking's stream and, once it shows HELD, pay: the CONFIRMED decision comes
    from the flash sale's worker, in its batches, after the stream opened, so every buyer
    times one push, from the decision's `paid_at` to its arrival (the worker's clock is this
    machine's). Buyers watching a flash-sale booking could not: most of those decisions beat
    the stream's opening."""

    url: str
    event_id: int
    limit: int
    at_once: int = 20  # buyers in flight together
    delays_s: list[float] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    _started: int = 0

    async def run(self, until: asyncio.Event) -> None:
        """Buyers one after another in `at_once` lanes, until `until` is set or `limit`
        have started."""
        client = Client(local_target(self.url), self.at_once)

        async def lane() -> None:
            while not until.is_set() and self._started < self.limit:
                self._started += 1
                try:
                    await self._buyer(client, self._started)
                except (OSError, ValueError, TimeoutError) as exc:
                    self.failed[type(exc).__name__] += 1

        try:
            await asyncio.gather(*(lane() for _ in range(self.at_once)))
        finally:
            client.close()

    async def _buyer(self, client: Client, n: int) -> None:
        body = json.dumps({"event_id": self.event_id, "user_id": f"watch-{n}", "quantity": 1})
        status, raw = await client.request("POST", "/api/bookings", body.encode())
        if status != 202:
            self.failed[f"booking {status}"] += 1
            return
        booking_id = json.loads(raw)["booking_id"]
        path = f"/api/bookings/{booking_id}/events"
        stream = await asyncio.wait_for(Stream.open(local_target(self.url), path), 30)
        try:
            paid = False
            while (data := await asyncio.wait_for(stream.data(), 60)) is not None:
                view = json.loads(data)
                if view["status"] == "HELD" and not paid:
                    pay = json.dumps({"payment_ref": f"bench-{booking_id}"}).encode()
                    status, _ = await client.request(
                        "POST", f"/api/bookings/{booking_id}/payment", pay
                    )
                    if status != 202:
                        self.failed[f"payment {status}"] += 1
                        return
                    paid = True
                elif view["status"] == "CONFIRMED" and paid:
                    decided = dt.datetime.fromisoformat(view["paid_at"]).timestamp()
                    self.delays_s.append(time.time() - decided)
                    return
                elif view["status"] != "PENDING":
                    self.failed[f"stream showed {view['status']}"] += 1
                    return
            self.failed["stream ended early"] += 1
        finally:
            stream.close()

    @property
    def timed(self) -> int:
        return len(self.delays_s)

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    @property
    def p99_ms(self) -> float:
        return percentile(self.delays_s, 0.99) * 1000 if self.delays_s else float("nan")

    @property
    def p50_ms(self) -> float:
        return percentile(self.delays_s, 0.5) * 1000 if self.delays_s else float("nan")
