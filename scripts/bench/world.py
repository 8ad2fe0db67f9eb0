"""Everything one benchmark run owns (its databases, Redis prefix, topics, groups and
processes), how much each phase does, and the small setup calls the phases share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import psycopg
import redis.exceptions
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest
from psycopg.rows import DictRow, dict_row

from scripts.bench.proc import Monitor
from scripts.loadgen.client import Client, bearer, local_target
from scripts.pipeline import Pipeline, terminate
from shared import venue
from shared.config import Settings
from shared.contracts import Command, encode_command, event_key
from shared.db import NamedQueries, migrate, with_database
from shared.redis_clients import open_redis
from shared.seating import Layout
from shared.topics import ensure_topics

MIB = 1024
bench_queries = NamedQueries("scripts.bench")


Conn = psycopg.AsyncConnection[DictRow]


@dataclass(frozen=True)
class Sizes:
    """How much each phase does. --quick divides the counts and durations by about 10."""

    warmup_s: float  # wrk warm-up before each measured wrk run (not counted)
    http_s: float  # measured wrk duration: HTTP ceiling, intake, sold-out
    connections: int  # wrk keep-alive connections
    intake_capacity: int  # seats of the intake event (nothing decides it: never sells out)
    backlog: int  # booking requests the real worker drains (one hot event)
    naive: int  # bookings the naive finaliser decides (it is slow)
    flash_requests: int
    flash_seats: int
    paced_connections: int  # the flash-sale client's connection cap
    drain_timeout_s: float  # worker drain bound
    decide_timeout_s: float  # flash sale: bound on waiting for the last decision
    payments: int  # holds paid for in one backlog (phase 9)
    expiring: int  # holds expiring at one moment (phase 10)
    contended: int  # requests naming 2 of the same 100 seats (phase 11a)
    groups: int  # groups of 4 placed together (phase 11b)
    seat_map: int  # seats of 11b's map, whose read phase 11c measures
    streams: int  # Server-Sent Events connections one API process holds (phase 12a)
    watched: int  # at most this many buyers pay for a hold while watching (phase 12b)
    queue_entries: int = 1_000_000  # queue entries loaded for Redis's memory (phase 13b)
    page_loads: int = 10  # cold loads of the sale page in headless Chromium (phase 14)


FULL = Sizes(
    2, 10, 64, 200_000, 100_000, 5_000, 100_000, 10_000, 128, 420, 120, 50_000, 10_000,
    10_000, 20_000, 100_000, 5_000, 10_000,
)  # fmt: skip


QUICK = Sizes(
    1, 3, 64, 20_000, 10_000, 500, 10_000, 1_000, 128, 60, 60, 5_000, 1_000, 1_000, 2_000, 10_000,
    500, 1_000, queue_entries=100_000, page_loads=3,
)  # fmt: skip


@dataclass
class World:
    """Everything this run owns: settings pointing at its own database, prefix, topics and
    groups; the processes it started; where logs and results go."""

    base: Settings
    run_id: str
    sizes: Sizes
    out_dir: Path
    settings: Settings = field(init=False)
    drain: Settings = field(init=False)  # the finalisation phase's topic and group
    quiet: Settings = field(init=False)  # ... its twin with the booking-events outbox off
    holds: Settings = field(init=False)  # the payment and expiry phases' topic and group
    seats: Settings = field(init=False)  # the seat-choice phases' topic and group
    base_db_url: str = field(init=False)  # baselines live in their own database
    base_settings: Settings = field(init=False)  # ... with their own Redis prefix
    admin_url: str = field(init=False)
    log_dir: Path = field(init=False)
    pipeline: Pipeline = field(init=False)
    tokens: Settings = field(init=False)  # the API of rows 2t and 7t
    token_pipeline: Pipeline = field(init=False)
    monitor: Monitor = field(default_factory=Monitor)
    bare: subprocess.Popen[bytes] | None = None
    events: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ns = f"bench{self.run_id}"
        self.admin_url = with_database(self.base.database_url, "postgres")
        self.base_db_url = with_database(self.base.database_url, f"bench_{self.run_id}_base")
        self.settings = msgspec.structs.replace(
            self.base.namespaced(ns),
            database_url=with_database(self.base.database_url, f"bench_{self.run_id}"),
            admin_token=secrets.token_hex(16),
            worker_metrics_port=0,  # no port clashes with other workers on the machine
            # Rows 2 to 7 as before tokens, whatever the environment says (the address limit
            # would refuse most of wrk's requests, all from one address); 2t and 7t use `tokens`.
            buyer_auth="open",
            rate_limit_address_per_s=0.0,
        )
        # Token checking and both rate limits on, the address limit far above any rate here
        # (wrk is one address): what the checks cost, with nothing refused.
        self.tokens = msgspec.structs.replace(
            self.settings,
            buyer_auth="token",
            jwt_secret=secrets.token_urlsafe(48),
            rate_limit_buyer_per_s=10.0,
            rate_limit_buyer_burst=20,
            rate_limit_address_per_s=1e6,
            rate_limit_address_burst=1_000_000,
        )
        self.drain = msgspec.structs.replace(
            self.settings,
            topic=f"{ns}.backlog",
            dlq_topic=f"{ns}.backlog.dlq",
            consumer_group=f"{ns}-drain",
        )
        self.quiet = msgspec.structs.replace(
            self.settings,
            topic=f"{ns}.backlog-quiet",
            dlq_topic=f"{ns}.backlog-quiet.dlq",
            consumer_group=f"{ns}-drain-quiet",
            outbox=False,
        )
        self.holds = msgspec.structs.replace(
            self.settings,
            topic=f"{ns}.holds",
            dlq_topic=f"{ns}.holds.dlq",
            consumer_group=f"{ns}-holds",
        )
        self.seats = msgspec.structs.replace(
            self.settings,
            topic=f"{ns}.seats",
            dlq_topic=f"{ns}.seats.dlq",
            consumer_group=f"{ns}-seats",
        )
        self.base_settings = msgspec.structs.replace(
            self.settings, database_url=self.base_db_url, redis_prefix=f"{ns}base"
        )
        self.log_dir = self.out_dir / f"logs-{self.run_id}"
        self.pipeline = Pipeline(self.settings, log_dir=self.log_dir)
        # A folder of its own: each Pipeline numbers its logs from 01, so the two APIs' logs
        # would be the same file.
        self.token_pipeline = Pipeline(self.tokens, log_dir=self.log_dir / "token-api")

    @property
    def databases(self) -> list[str]:
        return [
            urlsplit(u).path.lstrip("/") for u in (self.settings.database_url, self.base_db_url)
        ]

    async def create(self) -> None:
        """Databases (migrated), topics. Redis keys appear with use, under the prefix."""
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as c:
            for name in self.databases:
                await c.execute(f'CREATE DATABASE "{name}"')
        for url in (self.settings.database_url, self.base_db_url):
            await asyncio.to_thread(migrate, url)
        await ensure_topics(self.settings)
        await ensure_topics(self.drain)
        await ensure_topics(self.quiet)
        await ensure_topics(self.holds)
        await ensure_topics(self.seats)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def stop_processes(self) -> None:
        terminate(self.bare)
        self.token_pipeline.stop()
        self.pipeline.stop()

    async def destroy(self) -> None:
        """Remove every trace of the run (each step on its own, so one failure does not
        leave the rest behind)."""
        with contextlib.suppress(psycopg.Error, OSError):
            async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as c:
                for name in self.databases:
                    await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await delete_redis_prefix(self.settings)
            await delete_redis_prefix(self.base_settings)
        with contextlib.suppress(KafkaError, OSError):
            await delete_kafka(self.settings, self.drain, self.quiet, self.holds, self.seats)


async def delete_redis_prefix(settings: Settings) -> int:
    client = open_redis(settings)
    deleted = 0
    try:
        batch: list[str] = []
        async for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted


async def delete_kafka(*all_settings: Settings) -> None:
    """Delete the run's topics and consumer groups (aiokafka's admin client has no
    delete-groups call, so the DeleteGroups request is sent to the group coordinator)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=all_settings[0].bootstrap_servers)
    await admin.start()
    try:
        topics = sorted({t for s in all_settings for t in (s.topic, s.dlq_topic, s.events_topic)})
        await admin.delete_topics(topics)
        for group in {s.consumer_group for s in all_settings}:
            with contextlib.suppress(KafkaError):
                coordinator = await admin.find_coordinator(group)
                await admin._send_request_to_node(coordinator, DeleteGroupsRequest([group]))
    finally:
        await admin.close()


async def connect(url: str) -> Conn:
    """A connection for the bench's own SQL; no statement may run past a minute (bound)."""
    return await psycopg.AsyncConnection.connect(
        url, row_factory=dict_row, options="-c statement_timeout=60000"
    )


async def analyze(url: str) -> None:
    """Fresh planner statistics after bulk-creating seats, as autovacuum would have them by
    the time a sale starts (stale ones can pick pathological plans: seen here, a one-row
    UPDATE of the naive baseline burning minutes)."""
    async with await connect(url) as conn:
        await conn.set_autocommit(True)
        await conn.execute("ANALYZE")


async def create_bare_event(
    conn: Conn,
    name: str,
    capacity: int,
    limit: int,
    hold_seconds: int = 0,
    layout: Layout | None = None,
) -> int:
    """An event with its seats (general admission, or `layout`), straight in PostgreSQL (the
    worker builds its gate counter on first use; the baselines have none)."""
    async with conn.transaction(), conn.cursor() as cur:
        event = await venue.create_event(
            cur, name, limit, hold_seconds, layout or Layout.general_admission(capacity)
        )
    return int(event["id"])


async def create_event(
    client: Client, token: str, name: str, capacity: int, limit: int, hold_seconds: int = 0
) -> int:
    fields = {"name": name, "capacity": capacity, "per_user_limit": limit}
    body = json.dumps(fields | {"hold_seconds": hold_seconds}).encode()
    status, raw = await client.request("POST", "/api/events", body, bearer(token))
    if status != 201:
        raise RuntimeError(f"creating event {name!r} failed: {status} {raw[:300]!r}")
    return int(json.loads(raw)["id"])


async def produce(settings: Settings, commands: Sequence[Command]) -> float:
    """Produce commands straight into the settings' topic, keyed by event (acks=all,
    idempotent, batched), as a backlog for a worker to drain. Returns messages/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for chunk in batches(commands, 5000):
            futures = [
                await producer.send(settings.topic, encode_command(c), key=event_key(c.event_id))
                for c in chunk
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(commands) / (time.perf_counter() - started)


async def api_client(url: str, connections: int = 4) -> Client:
    return Client(local_target(url), connections, timeout_s=30.0)


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def partitions_of(bootstrap: list[str], topic: str) -> list[TopicPartition]:
    """The topic's partitions, from the broker's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
