"""The reconciler: puts the Redis gate back in line with the PostgreSQL ledger.

Under normal operation every hold is settled by the batch that took it, or by the
redelivery of that batch after a crash, so the reconciler usually finds nothing. It is the
safety net for what redelivery cannot see: a counter lost with Redis's data, a hold whose
message was settled by another worker during a rebalance, a counter that drifted. It runs at
worker start and on demand: `python -m consumer.reconcile [--event ID]`.

It only ever touches the gate, never the ledger, and each fix is safe to race with live
workers: holds are settled idempotently, orphans are released only once every message
produced before they were seen has been committed by the group, and counters are corrected
by compare-and-set under the event's row lock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from dataclasses import asdict, dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumer.finalize import Finalizer
from shared import logs
from shared.config import Settings, load_or_exit
from shared.contracts import Status
from shared.db import Pool, open_pool, queries, uuid_array
from shared.decisions import DecisionCache
from shared.inventory import Inventory
from shared.metrics import RECONCILER_FIXES
from shared.redis_clients import open_redis

log = logging.getLogger(__name__)


@dataclass
class Fixes:
    events_checked: int = 0
    counters_rebuilt: int = 0
    holds_settled: int = 0  # holds of bookings PostgreSQL had already decided
    holds_released: int = 0  # holds whose booking never reached PostgreSQL
    marks_dropped: int = 0  # release marks of releases PostgreSQL committed
    counters_corrected: int = 0
    group_caught_up: bool = False

    @property
    def total(self) -> int:
        return (
            self.counters_rebuilt
            + self.holds_settled
            + self.holds_released
            + self.marks_dropped
            + self.counters_corrected
        )


class Reconciler:
    def __init__(self, settings: Settings, pool: Pool, finalizer: Finalizer, inventory: Inventory):
        self._settings = settings
        self._pool = pool
        self._finalizer = finalizer
        self._inventory = inventory

    async def run(self, event_ids: list[int] | None = None) -> Fixes:
        fixes = Fixes()
        if event_ids is None:
            async with self._pool.connection() as conn, conn.cursor() as cur:
                await cur.execute(queries.event_ids)
                event_ids = [row["id"] for row in await cur.fetchall()]
        seen_holds = {event: await self._inventory.hold_ids(event) for event in event_ids}
        # Checked after the holds were read: if the group has committed everything produced
        # until now, every message behind those holds has been decided.
        fixes.group_caught_up = await group_caught_up(self._settings)
        for event in event_ids:
            await self._reconcile_event(event, seen_holds[event], fixes)
            fixes.events_checked += 1
        kinds = (
            "counters_rebuilt", "holds_settled", "holds_released", "marks_dropped",
            "counters_corrected",
        )  # fmt: skip
        for kind in kinds:
            RECONCILER_FIXES.labels(kind).inc(getattr(fixes, kind))
        if fixes.total:
            log.warning("reconciler fixed: %s", asdict(fixes))
        return fixes

    async def _reconcile_event(self, event_id: int, holds: set[uuid.UUID], fixes: Fixes) -> None:
        if await self._inventory.available(event_id) is None:
            if await self._finalizer.rebuild_counter(event_id):
                fixes.counters_rebuilt += 1
            return  # a rebuilt gate has no holds and matches the ledger
        if holds:
            async with self._pool.connection() as conn, conn.cursor() as cur:
                await cur.execute(queries.decided_among, {"booking_ids": uuid_array(holds)})
                decided = {row["booking_id"]: row["status"] for row in await cur.fetchall()}
            outcomes = [(bid, status != Status.REJECTED) for bid, status in decided.items()]
            await self._inventory.settle(event_id, outcomes)
            fixes.holds_settled += len(outcomes)
            orphans = holds - decided.keys()
            if orphans and fixes.group_caught_up:
                await self._inventory.settle(event_id, [(bid, False) for bid in orphans])
                fixes.holds_released += len(orphans)
        await self._drop_marks(event_id, fixes)
        if fixes.group_caught_up and await self._correct_counter(event_id):
            fixes.counters_corrected += 1

    async def _drop_marks(self, event_id: int, fixes: Fixes) -> None:
        """A release mark outlives its transaction only when the worker died between the
        commit and settle.lua. Marks of bookings PostgreSQL no longer has HELD are done with
        (their stock came back with the mark); the others belong to a transaction that did
        not commit, whose retry needs them."""
        marked = await self._inventory.released_ids(event_id)
        if not marked:
            return
        async with self._pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(queries.decided_among, {"booking_ids": uuid_array(marked)})
            still_held = {r["booking_id"] for r in await cur.fetchall() if r["status"] == "HELD"}
        done = sorted(marked - still_held)
        if done:
            await self._inventory.settle(event_id, [], done)
            fixes.marks_dropped += len(done)

    async def _correct_counter(self, event_id: int) -> bool:
        """An idle gate must read capacity - sold - held; fix it if not, unless it moved
        meanwhile."""
        gate = await self._inventory.snapshot(event_id)
        if gate.available is None or gate.held or gate.releasing:
            return False
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(queries.lock_event, {"event_id": event_id})
            event = await cur.fetchone()
            if event is None:
                return False
            should = event["capacity"] - event["sold"] - event["held"]
            if gate.available == should:
                return False
            corrected = await self._inventory.correct(event_id, gate.available, should)
        if corrected:
            log.warning(
                "event %s: counter %s corrected to %s",
                event_id,
                gate.available,
                should,
                extra={"event_id": event_id},
            )
        return corrected


async def group_caught_up(settings: Settings) -> bool:
    """True when the consumer group has committed every message of the booking topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.consumer_group)
        partitions = consumer.partitions_for_topic(settings.topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(settings.topic) or set()
        tps = [TopicPartition(settings.topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            done = committed.get(tp)
            if ends[tp] > (done.offset if done is not None and done.offset >= 0 else 0):
                return False
        return True
    finally:
        await consumer.stop()
        await admin.close()


async def _main(event_ids: list[int] | None) -> int:
    settings = load_or_exit()
    logs.configure(settings)
    pool = open_pool(settings, max_size=2)
    redis_client = open_redis(settings)
    await pool.open()
    try:
        inventory = Inventory(redis_client, settings.redis_prefix)
        cache = DecisionCache(redis_client, settings.redis_prefix, settings.status_cache_ttl_s)
        finalizer = Finalizer(settings, pool, inventory, cache)
        fixes = await Reconciler(settings, pool, finalizer, inventory).run(event_ids)
    finally:
        await redis_client.aclose()
        await pool.close()
    for name, value in asdict(fixes).items():
        print(f"{name:>20}: {value}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consumer.reconcile", description=__doc__)
    parser.add_argument("--event", type=int, action="append", help="only this event (repeatable)")
    args = parser.parse_args()
    sys.exit(asyncio.run(_main(args.event)))


if __name__ == "__main__":
    main()
