"""The open-loop paced client of the flash sale: requests leave on schedule whatever the
API's latency, and latency counts from the schedule."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scripts.bench.progress import say
from scripts.loadgen.client import TRANSPORT_ERRORS, Client


@dataclass
class Paced:
    """What the open-loop client saw. Latencies count from each request's scheduled time
    (so queueing in the client when the API stalls is included, as wrk2 does)."""

    offered_rps: float
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)
    max_dispatch_lag_ms: float = 0.0
    last_202: float = 0.0  # time.time() of the last 202 received
    seconds: float = 0.0
    cpu_s: float = 0.0  # this process' CPU over the firing


async def paced_fire(
    client: Client,
    bodies: Iterable[bytes],
    rate: float,
    phase: str,
) -> Paced:
    """POST every body at `rate` per second, on schedule, whatever the API's latency (up to
    the client's connection cap). Bounded: each request times out in the client."""
    out = Paced(offered_rps=rate)
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    tasks: set[asyncio.Task[None]] = set()
    next_report = start + 5

    async def one(body: bytes, due: float) -> None:
        try:
            status, _ = await client.request("POST", "/api/bookings", body)
        except TRANSPORT_ERRORS as exc:
            out.statuses[type(exc).__name__] += 1
            return
        out.latencies_s.append(time.perf_counter() - due)
        out.statuses[str(status)] += 1
        if status == 202:
            out.last_202 = time.time()

    for i, body in enumerate(bodies):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        elif i % 32 == 0:
            await asyncio.sleep(0)  # behind schedule: still let responses in
        out.max_dispatch_lag_ms = max(out.max_dispatch_lag_ms, (time.perf_counter() - due) * 1e3)
        task = asyncio.create_task(one(body, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        out.sent += 1
        if time.perf_counter() >= next_report:
            next_report += 5
            say(phase, f"{out.sent} sent, {dict(out.statuses)}, {len(tasks)} in flight")
    await asyncio.gather(*tasks)
    out.seconds = time.perf_counter() - start
    out.cpu_s = time.process_time() - cpu0
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]
