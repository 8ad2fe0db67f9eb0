"""kafka_kill9: kill -9 the broker while the API takes traffic; restart it a few seconds
later. While nothing listens on the broker's port, no request may get a 202."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from scripts.chaos.faults import STACK_TIMEOUT_S
from scripts.chaos.nemesis import service_outage
from scripts.chaos.scenario import Run, Spec
from scripts.waiting import poll_until


async def inject(run: Run) -> None:
    """Kill the broker once a third is sold; restart it 3.5 s later."""
    port = int(run.settings.bootstrap_servers[0].rpartition(":")[2])
    await run.wait_sold(0.3, timeout_s=20)
    down = time.monotonic()
    listening: list[float] = []
    watchers: list[asyncio.Task[None]] = []

    async def while_down() -> None:
        nonlocal down
        down = time.monotonic()  # the kill -9 is done
        await asyncio.sleep(1.5)
        ready = await run.api.ready()
        run.expect("/ready says Kafka is down", ready.get("kafka") == "down", f"ready {ready}")
        await asyncio.sleep(2.0)
        # From now on, until the restart is done: when does the broker listen again?
        watchers.append(asyncio.create_task(_wait_listening(port, listening)))

    try:
        await service_outage(
            run, "kafka", "kill9", 3.5, "kill -9 kafka", "kafka restarted", while_down
        )
    finally:
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    up = listening[0] if listening else time.monotonic()
    run.note(
        f"kafka: nothing listened for {up - down:.1f}s, ready after {time.monotonic() - down:.1f}s"
    )
    inside = [a for a in run.traffic.attempts() if a.start > down + 0.2 and a.end < up]
    codes = Counter(str(a.status) for a in inside)
    run.expect(
        "no 202 while the broker was dead, 503 instead",
        codes["202"] == 0 and codes["503"] > 0,
        f"answers to requests made while nothing listened on :{port}: {dict(codes)}",
    )


async def _wait_listening(port: int, when: list[float]) -> None:
    """Append the moment something accepts TCP connections on 127.0.0.1:port."""

    async def accepts() -> float | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        except (OSError, TimeoutError):
            return None
        at = time.monotonic()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return at

    # Bounded as the restart it watches is; the caller cancels it once the restart is done.
    at = await poll_until(accepts, STACK_TIMEOUT_S, interval_s=0.1)
    if at is not None:
        when.append(at)


SPEC = Spec(
    "kafka_kill9",
    "Kafka broker kill -9 and restart under traffic",
    inject,
    duration_s=25,
)
