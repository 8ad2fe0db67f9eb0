"""Phase 13: the on-sale queue, on the real API, between two HTTP ceilings.

13a joins: distinct buyers joining one event's queue (201), measured with wrk.
13b memory: Redis's memory for `queue_entries` entries (1,000,000 in a full run), loaded
    through the join script (pipelined), before and after the opening's draw, with
    MEMORY USAGE of each of the queue's keys.
13c position polls: GET of one waiting entry (its position and ETA), measured with wrk.
The admission loop is stepped here (the script the worker's loop calls): no worker runs."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

from scripts.bench.phases.http_ceiling import phase_http_ceiling
from scripts.bench.progress import say
from scripts.bench.world import World, api_client
from scripts.bench.wrk import Get, WrkResult, measured_wrk
from scripts.loadgen.client import bearer
from shared.keys import RedisKeys
from shared.queue import Queues, queue_id
from shared.redis_clients import open_redis

POLLED_LINE = 10_000  # entries ahead of and behind the polled one (13c)
LOAD_BATCH = 10_000  # joins per pipeline
MEMORY_EVENT = 2**40  # a queue with no event behind it: only its Redis keys are measured


@dataclass
class QueueResult:
    joins: WrkResult
    polls: WrkResult
    ceiling_before: WrkResult
    ceiling_after: WrkResult
    entries: int
    load_s: float
    draw_s: float
    pre_bytes: int  # used_memory grown by the joins
    drawn_bytes: int  # ... and by the draw (the pre-queue is kept as its record)
    key_bytes: dict[str, int] = field(default_factory=dict)  # MEMORY USAGE per key, drawn

    @property
    def bytes_per_entry(self) -> float:
        return self.drawn_bytes / self.entries


async def _queued_event(world: World, name: str, opens_at: str) -> int:
    client = await api_client(world.pipeline.url, 1)
    body = {"name": name, "capacity": 1000, "queue": True, "opens_at": opens_at}
    try:
        status, raw = await client.request(
            "POST", "/api/events", json.dumps(body).encode(), bearer(world.settings.admin_token)
        )
    finally:
        client.close()
    if status != 201:
        raise RuntimeError(f"creating the queued event failed: {status} {raw[:300]!r}")
    return int(json.loads(raw)["id"])


async def _draw(queues: Queues, event_id: int) -> None:
    """The admission loop's steps until the opening's draw is done (nobody admitted: the
    rate is tiny)."""
    await queues.control(event_id, "rate", 0.001)
    await queues.control(event_id, "open")
    while True:
        step = await queues.step(
            event_id, secrets.token_hex(16), hold=False, sold_out=False, idle_ms=10**9, measured=1
        )
        if step.state != "drawing" and not step.more:
            return


async def _load(queues: Queues, event_id: int, n: int, tag: str, key: bytes) -> None:
    for start in range(0, n, LOAD_BATCH):
        buyers = [f"{tag}-{i}" for i in range(start, min(start + LOAD_BATCH, n))]
        await queues.join_many(event_id, [(queue_id(key, event_id, b), b) for b in buyers])


async def phase_queue(world: World) -> QueueResult:
    """13a-13c."""
    s = world.sizes
    ceiling_before = await phase_http_ceiling(world)
    url = world.pipeline.url
    joining = await _queued_event(world, "bench queue joins", "2100-01-01T00:00:00Z")
    joins = await measured_wrk(world, "queue-join", url, joining, "201", s.http_s, "api", join=True)

    redis = open_redis(world.settings)
    queues = Queues(redis, RedisKeys(world.settings.redis_prefix))
    key = world.settings.admission_key
    try:
        # 13c: one entry in the middle of a drawn line, polled as its buyer would.
        polled = await _queued_event(world, "bench queue polls", "2100-01-01T00:00:00Z")
        await _load(queues, polled, POLLED_LINE, "ahead", key)
        buyer = f"bench-{world.run_id}"
        entry = (await queues.join(polled, queue_id(key, polled, buyer), buyer)).queue_id
        await _load(queues, polled, POLLED_LINE, "behind", key)
        await _draw(queues, polled)
        path = f"/api/events/{polled}/queue/{entry}"
        polls = await measured_wrk(
            world, "queue-poll", url, polled, "200", s.http_s, "api", get=Get(path)
        )
        ceiling_after = await phase_http_ceiling(world)

        # 13b: memory, measured alone (nothing else of this run's grows meanwhile).
        await queues.create(MEMORY_EVENT, 2**42, 1)
        await queues.forget(MEMORY_EVENT)  # no event behind it: no admission loop moves it
        before = int((await redis.info("memory"))["used_memory"])
        started = time.monotonic()
        await _load(queues, MEMORY_EVENT, s.queue_entries, "m", key)
        load_s = time.monotonic() - started
        pre = int((await redis.info("memory"))["used_memory"]) - before
        started = time.monotonic()
        await _draw(queues, MEMORY_EVENT)
        draw_s = time.monotonic() - started
        drawn = int((await redis.info("memory"))["used_memory"]) - before
        keys = queues.keys.queue(MEMORY_EVENT)
        sizes = {
            name: int(await redis.memory_usage(k, samples=0) or 0)
            for name, k in zip(keys._fields, keys, strict=True)
        }
        await redis.unlink(*keys)
    finally:
        await redis.aclose()
    result = QueueResult(
        joins, polls, ceiling_before, ceiling_after, s.queue_entries, load_s, draw_s, pre,
        drawn, sizes,
    )  # fmt: skip
    say(
        "queue",
        f"{s.queue_entries:,} entries: {pre / 2**20:.0f} MiB joined, {drawn / 2**20:.0f} MiB "
        f"drawn ({result.bytes_per_entry:.0f} B/entry); loaded in {load_s:.1f} s, drawn in "
        f"{draw_s:.1f} s",
    )
    return result
