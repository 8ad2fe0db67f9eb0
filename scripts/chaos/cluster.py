"""The HA stack as its scenarios see it: which Kafka node leads a partition, whether every
replica is in sync, which Redis server Sentinel names the primary; and the availability a
fault window had (answers 202/409, the longest stretch without a decision)."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import Counter
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio.sentinel import Sentinel

from scripts.chaos.observe import query
from scripts.chaos.scenario import Run
from scripts.waiting import poll_until
from shared.config import Settings


async def _partitions(settings: Settings, topics: list[str]) -> list[dict[str, object]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [p for t in described for p in t["partitions"]]


async def leader_of(settings: Settings, topic: str, partition: int) -> int:
    """The node id leading the partition (-1 while it has none)."""
    for p in await _partitions(settings, [topic]):
        if p["partition"] == partition:
            return int(str(p["leader"]))
    raise LookupError(f"{topic} has no partition {partition}")


async def wait_leader_other_than(
    settings: Settings, topic: str, partition: int, node: int, timeout_s: float
) -> int | None:
    async def moved() -> int | None:
        try:
            leader = await leader_of(settings, topic, partition)
        except Exception:  # noqa: BLE001 - a cluster in turmoil may not answer yet
            return None
        return leader if leader not in (node, -1) else None

    return await poll_until(moved, timeout_s, interval_s=0.1)


async def wait_in_sync(settings: Settings, replicas: int, timeout_s: float) -> bool:
    """Until every partition of the scenario's topics has all `replicas` in sync."""
    topics = [settings.topic, settings.events_topic]

    async def in_sync() -> bool:
        try:
            parts = await _partitions(settings, topics)
        except Exception:  # noqa: BLE001 - asked again until the deadline
            return False
        return bool(parts) and all(len(p["isr"]) == replicas for p in parts)  # type: ignore[arg-type]

    return bool(await poll_until(in_sync, timeout_s, interval_s=0.25))


async def redis_primary_port(settings: Settings) -> int:
    """The port of the Redis server Sentinel names the primary now."""
    sentinel = Sentinel(settings.sentinels, socket_timeout=0.5)
    try:
        _, port = await sentinel.discover_master(settings.redis_sentinel_master)
    finally:
        for client in sentinel.sentinels:
            await client.aclose()
    return int(port)


@dataclass(frozen=True)
class Window:
    """A fault window: from the fault until the system is whole again (monotonic clock),
    with the wall-clock time of its start to compare with the ledger's timestamps."""

    start: float
    end: float
    wall_start: float

    @classmethod
    def opening(cls) -> Window:
        return cls(time.monotonic(), 0.0, time.time())

    def closed(self) -> Window:
        return Window(self.start, time.monotonic(), self.wall_start)

    @property
    def wall_end(self) -> float:
        return self.wall_start + (self.end - self.start)


def answered(run: Run, window: Window) -> tuple[float, Counter[str]]:
    """The share of requests made in the window answered 202 or 409, and their answers."""
    codes = Counter(
        str(a.status) for a in run.traffic.attempts() if window.start <= a.start <= window.end
    )
    total = sum(codes.values())
    return ((codes["202"] + codes["409"]) / total if total else 1.0), codes


async def longest_silence(run: Run, window: Window) -> float:
    """The longest stretch inside the window without a decision, from its start to the last
    decision in it (after that the sale may simply be sold out)."""
    rows = await query(
        run.settings,
        "SELECT decided_at FROM bookings WHERE decided_at BETWEEN %(a)s AND %(b)s"
        " ORDER BY decided_at",
        {
            "a": dt.datetime.fromtimestamp(window.wall_start, dt.UTC),
            "b": dt.datetime.fromtimestamp(window.wall_end, dt.UTC),
        },
    )
    times = [window.wall_start, *(r["decided_at"].timestamp() for r in rows)]
    if len(times) == 1:
        return window.end - window.start
    return float(max(b - a for a, b in itertools.pairwise(times)))


async def expect_available(run: Run, window: Window, share: float, silence_s: float) -> None:
    """The scenario's availability checks over the fault window."""
    ok, codes = answered(run, window)
    run.expect(
        f"at least {share:.0%} of requests during the fault answered 202 or 409",
        ok >= share,
        f"{ok:.1%} of {sum(codes.values())} requests in {window.end - window.start:.1f}s: "
        f"{dict(codes)}",
    )
    silent = await longest_silence(run, window)
    run.expect(
        f"the sale kept deciding (longest stretch without a decision < {silence_s:.0f}s)",
        silent < silence_s,
        f"longest stretch without a decision during the fault {silent:.1f}s",
    )
    run.note(
        f"availability during the fault: {ok:.1%} answered 202/409, longest silence "
        f"{silent:.1f}s over {window.end - window.start:.1f}s"
    )
