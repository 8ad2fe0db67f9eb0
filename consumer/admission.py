"""The admission loop: moves every event's on-sale queue (shared/queue.py), in the worker.

One process at a time moves the queues: the one holding the lease (a Redis key renewed
every tick; a worker killed loses it within LEASE_MS, and another takes over). Each tick,
for each queued event, it reads the event's stock from PostgreSQL and the lag of its
partition from Kafka, and calls queue_admit.lua, which opens the queue (the draw), expires
entries not polled, admits at the configured rate, and ends the wait of everyone left once
the event is sold out. Admission is held while the event's held stock or its partition's
lag is above its threshold (Settings.queue_pause_held_pct, queue_pause_lag), and while the
gate has no stock left to give (the admitted buyers' bookings in flight may still sell out).

Nothing here decides a booking: an admission is only the right to ask, and the worker
still checks every request against the gate and the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from shared.config import Settings
from shared.contracts import partition_of
from shared.db import Pool, fetch_all, queries
from shared.failures import classify
from shared.inventory import Inventory
from shared.keys import RedisKeys
from shared.lua import register
from shared.metrics import QUEUE_ADMISSION_RATE, QUEUE_ENDED, QUEUE_PAUSED, QUEUE_WAITING
from shared.queue import Queues

log = logging.getLogger(__name__)

LEASE_MS = 3000  # a holder silent this long loses the lease
LAG_EVERY_S = 1.0  # how often the partitions' lag is asked of Kafka
LAG_TIMEOUT_S = 1.0  # ... and how long for, well inside LEASE_MS
RATE_WINDOW_S = 5.0  # the admission rate is measured over this much of the recent past
RATE_KNOWN_AFTER_S = 1.0  # ... and is known once it covers at least this much
STEPS_PER_TICK = 20  # at most this many script calls per queue per tick (CHUNK entries each)


@dataclass
class _Rate:
    """Admissions over the last RATE_WINDOW_S, while admitting."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def add(self, now: float, admitted: int) -> None:
        self.total += admitted
        self.samples.append((now, self.total))
        while self.samples and now - self.samples[0][0] > RATE_WINDOW_S:
            self.samples.popleft()

    def measured(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 - t0 < RATE_KNOWN_AFTER_S or n1 == n0:
            return None
        return (n1 - n0) / (t1 - t0)

    def reset(self) -> None:
        self.samples.clear()


class Admitter:
    def __init__(self, settings: Settings, pool: Pool, redis: Redis) -> None:
        self._settings = settings
        self._pool = pool
        self._keys = RedisKeys(settings.redis_prefix)
        self.queues = Queues(redis, self._keys)
        self._inventory = Inventory(redis, settings.redis_prefix)
        self._lease = register(redis, "lease")
        self._holder = secrets.token_hex(8)
        self._rates: dict[int, _Rate] = {}
        self._lags: dict[int, int] = {}
        self._lags_at = 0.0
        self._kafka: AIOKafkaConsumer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop`; a dependency that fails is logged and tried again next tick."""
        try:
            while not stop.is_set():
                try:
                    lease = [self._keys.queue_admitter]
                    if await self._lease(keys=lease, args=[self._holder, LEASE_MS]):
                        await self.tick()
                except Exception as exc:
                    if not classify(exc).retryable:
                        raise
                    log.warning("admission loop: %r; trying again", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.queue_tick_s)
        finally:
            if self._kafka is not None:
                await self._kafka.stop()

    async def tick(self) -> None:
        """One move of every queued event's queue."""
        s = self._settings
        events = await self.queues.queued_events()
        if not events:
            return
        rows = await fetch_all(self._pool, queries.queue_stock, {"event_ids": events})
        stock = {row["id"]: row for row in rows}
        lags = await self._partition_lags(events)
        waiting, measured_sum = 0, 0.0
        paused = {"admin": 0, "held": 0, "lag": 0}
        now = time.monotonic()
        for event_id in events:
            row = stock.get(event_id)
            if row is None:
                await self.queues.forget(event_id)  # the event is gone
                continue
            unsold = row["capacity"] - row["sold"]
            sold_out = unsold <= 0
            held = row["held"] > 0 and row["held"] * 100 > s.queue_pause_held_pct * unsold
            # Every seat taken at the gate (sold, or in flight to the ledger): the buyers
            # already admitted will settle whether it is sold out; more would only hear so.
            held = held or (not sold_out and await self._inventory.available(event_id) == 0)
            lagging = lags.get(event_id, 0) > s.queue_pause_lag
            rate = self._rates.setdefault(event_id, _Rate())
            measured = rate.measured()
            for _ in range(STEPS_PER_TICK):
                step = await self.queues.step(
                    event_id,
                    secrets.token_hex(16),
                    hold=held or lagging,
                    sold_out=sold_out,
                    idle_ms=int(s.queue_idle_expiry_s * 1000),
                    measured=measured,
                )
                QUEUE_ENDED.labels("admitted").inc(step.admitted)
                QUEUE_ENDED.labels("expired").inc(step.expired)
                QUEUE_ENDED.labels("sold_out").inc(step.sold_out)
                if step.state == "open":
                    rate.add(now, step.admitted)
                if not step.more:
                    break
            if step.state == "paused":
                rate.reset()  # a paused queue's rate is not known until it moves again
                paused["held" if held else "lag" if lagging else "admin"] += 1
            elif step.state == "sold_out" and step.waiting == 0:
                await self.queues.forget(event_id)  # nobody left to tell; later joins say so
                self._rates.pop(event_id, None)
            waiting += step.waiting
            measured_sum += measured or 0.0
        QUEUE_WAITING.set(waiting)
        QUEUE_ADMISSION_RATE.set(measured_sum)
        for why, n in paused.items():
            QUEUE_PAUSED.labels(why).set(n)

    async def _partition_lags(self, events: list[int]) -> dict[int, int]:
        """Per event: its partition's messages not yet committed by the worker group, asked
        at most every LAG_EVERY_S and for at most LAG_TIMEOUT_S (a slow broker must not hold
        the tick past the lease). Unknown (Kafka unreachable or slow): the last answer
        stands."""
        if time.monotonic() - self._lags_at < LAG_EVERY_S:
            return self._lags
        self._lags_at = time.monotonic()
        try:
            self._lags = await asyncio.wait_for(self._ask_lags(events), LAG_TIMEOUT_S)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("admission loop: partition lag unknown (%r)", exc)
        return self._lags

    async def _ask_lags(self, events: list[int]) -> dict[int, int]:
        s = self._settings
        kafka = await self._lag_consumer()
        partitions = kafka.partitions_for_topic(s.topic)
        if not partitions:
            await kafka.topics()  # not subscribed: ask for the metadata once
            partitions = kafka.partitions_for_topic(s.topic)
        if not partitions:
            return self._lags
        tps = {e: TopicPartition(s.topic, partition_of(e, partitions)) for e in events}
        ends = await kafka.end_offsets(list(set(tps.values())))
        committed = {tp: await kafka.committed(tp) or 0 for tp in set(tps.values())}
        return {e: max(ends.get(tp, 0) - committed[tp], 0) for e, tp in tps.items()}

    async def _lag_consumer(self) -> AIOKafkaConsumer:
        """The client that reads the worker group's committed offsets; one whose start
        failed (or timed out) is stopped and forgotten, so the next ask starts a new one."""
        if self._kafka is None:
            s = self._settings
            kafka = AIOKafkaConsumer(
                bootstrap_servers=s.bootstrap_servers,
                group_id=s.consumer_group,  # only to read its committed offsets
                enable_auto_commit=False,
            )
            try:
                await kafka.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await kafka.stop()  # a half-started client would keep its connections
                raise
            self._kafka = kafka
        return self._kafka
