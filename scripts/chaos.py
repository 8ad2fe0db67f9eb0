"""Chaos runner: run a sale against the real services, break things while traffic flows, let
the faults heal, then prove the invariants of DESIGN.md from the outside.

    eval "$(scripts/stack env)"
    python -m scripts.chaos [SCENARIO ...] [--capacity N] [--demand-factor F] [--json FILE]

Each scenario gets its own database (migrated from sql/), Redis key prefix, Kafka topics and
consumer group, and its own API and worker processes (scripts/pipeline.py). Services are
broken through `scripts/stack kill9|start|stop|restart NAME` of this repository (so the ports
come from the environment, as for the stack itself); workers through their process handles.
Buyers are simulated with httpx: paced, bounded concurrency, every request carries an
Idempotency-Key and is retried with it on 503 and transport errors (bounded), so no request is
lost from the buyer's view. After the faults heal, the runner waits (condition-polled,
bounded) until every accepted booking is decided and the audit is CLEAN, then checks, through
the API and by direct SQL: the 202 booking ids are exactly the decided ones, no oversell, no
undersell, no seat twice, no booking twice, no user above the limit, the audit CLEAN, Kafka
offsets committed only for what PostgreSQL committed. If one of those checks fails and
`consumer/reconcile.py` exists, `python -m consumer.reconcile` is run once and they are
repeated; the verdict then says "reconciled" if that helped, and the report shows what the
reconciler printed. Every stack service is brought back up after every scenario.

Scenarios (default: all, in this order): worker_kill9, fault_points, rebalance, kafka_kill9,
redis_wipe, postgres_restart, duplicates, worker_sigterm. Exit status 1 if any check failed.
The scenario functions are also called in-process by tests/chaos.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from psycopg import sql
from psycopg.rows import dict_row

from scripts.pipeline import ROOT, Pipeline, settings_env
from shared.config import Settings
from shared.contracts import decode_request, event_key
from shared.db import migrate
from shared.deadlines import appended_after_expiry
from shared.decisions import DecisionCache
from shared.inventory import open_redis
from shared.topics import ensure_topics

STACK = ROOT / "scripts" / "stack"
RECONCILER = ROOT / "consumer" / "reconcile.py"

DEFAULT_CAPACITY = 150
DEFAULT_DEMAND_FACTOR = 3.0
PER_USER_LIMIT = 4
MAX_QUANTITY = 3
CONVERGE_TIMEOUT_S = 45.0
TERMINAL = ("CONFIRMED", "REJECTED")

_ASSIGNED = re.compile(r"partitions (assigned|revoked): \[([\d, ]*)\]")


def _say(scenario: str, elapsed: float, text: str) -> None:
    print(f"[{scenario:<16} {elapsed:6.1f}s] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the stack


class StackError(RuntimeError):
    pass


class Stack:
    """`scripts/stack` of this repository, run with the current environment (its ports)."""

    def __init__(self, log: Path) -> None:
        self.log = log

    async def __call__(self, *args: str, timeout_s: float = 240.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(STACK),
            *args,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise StackError(f"scripts/stack {' '.join(args)}: no answer in {timeout_s}s") from None
        text = out.decode(errors="replace")
        _append(self.log, f"$ scripts/stack {' '.join(args)}  (exit {proc.returncode})\n{text}")
        if proc.returncode != 0:
            raise StackError(f"scripts/stack {' '.join(args)} exited {proc.returncode}: {text}")
        return text

    async def heal(self) -> None:
        """Every service up (idempotent): later scenarios and tests need a healthy stack."""
        await self("up", "--services-only")


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(text.rstrip("\n") + "\n")


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# ------------------------------------------------------------------------- isolation


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass
class Sandbox:
    """One scenario's own database, Redis prefix, topics and consumer group."""

    settings: Settings
    admin_url: str
    db_name: str

    @classmethod
    async def create(cls, base: Settings, partitions: int) -> Sandbox:
        ns = f"chaos{uuid.uuid4().hex[:10]}"
        admin_url = _with_database(base.database_url, "postgres")
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(ns)))
        url = _with_database(base.database_url, ns)
        await asyncio.to_thread(migrate, url)
        settings = msgspec.structs.replace(
            base,
            database_url=url,
            redis_prefix=ns,
            topic=f"{ns}.booking-requests",
            dlq_topic=f"{ns}.booking-requests.dlq",
            topic_partitions=partitions,
            consumer_group=f"{ns}-finalizer",
            admin_token=f"admin-{ns}",
            # A buyer waiting for a dead broker hears 503 after 2 s instead of 5.
            produce_timeout_s=2.0,
            # A backlog spans several batches, so a kill lands mid-batch more often.
            batch_max=50,
            fault_point="",
            log_json=False,
            log_level="INFO",
        )
        await ensure_topics(settings)
        return cls(settings, admin_url, ns)

    async def destroy(self) -> None:
        with contextlib.suppress(psycopg.Error, OSError):
            async with await psycopg.AsyncConnection.connect(
                self.admin_url, autocommit=True
            ) as conn:
                await conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.db_name)
                    )
                )
        client = open_redis(self.settings)
        try:
            keys = [k async for k in client.scan_iter(match=f"{self.db_name}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        except Exception as exc:  # noqa: BLE001 - cleanup is best effort
            print(f"chaos: could not delete Redis keys of {self.db_name}: {exc!r}", file=sys.stderr)
        finally:
            await client.aclose()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        try:
            await admin.start()
            await admin.delete_topics([self.settings.topic, self.settings.dlq_topic])
        except (KafkaError, OSError) as exc:
            print(f"chaos: could not delete topics of {self.db_name}: {exc!r}", file=sys.stderr)
        finally:
            await admin.close()


def partition_of(event_id: int, partitions: int) -> int:
    """The partition the API's producer picks for an event (murmur2 of the key, as Java)."""
    return int(murmur2(event_key(event_id)) & 0x7FFFFFFF) % partitions


# ------------------------------------------------------------------------ processes


@dataclass
class ChaosPipeline(Pipeline):
    """Pipeline that remembers each process's log file and waits without blocking the loop."""

    logs: dict[int, Path] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str], settings: Settings) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._started += 1
        path = self.log_dir / f"{self._started:02d}-{name}.log"
        with path.open("wb") as log:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT
            )
        self.logs[proc.pid] = path
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        return _read(self.logs[proc.pid])

    def assignment(self, proc: subprocess.Popen[bytes]) -> list[int] | None:
        """The partitions a worker consumes now per its log; None while it has none."""
        current: list[int] | None = None
        for kind, parts in _ASSIGNED.findall(self.log_of(proc)):
            if kind == "revoked":
                current = None
            else:
                current = [int(p) for p in parts.split(",") if p.strip()] or None
        return current

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    @staticmethod
    async def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return proc.returncode

    async def wait_assigned(self, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            if self.assignment(proc):
                return True
            await asyncio.sleep(0.05)
        return False

    async def wait_log(self, proc: subprocess.Popen[bytes], needle: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_of(proc):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop_all(self) -> None:
        procs = [*self.workers, *([self.api] if self.api is not None else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            if await self.wait_exit(proc, 20.0) is None:
                proc.kill()
                await self.wait_exit(proc, 10.0)


# --------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Ask:
    """One buyer's booking request, sent `at` seconds after the sale opens."""

    index: int
    event_id: int
    user_id: str
    quantity: int
    key: str
    at: float


def plan_demand(
    events: dict[int, int],
    factor: float,
    duration_s: float,
    rng: random.Random,
    limit: int = PER_USER_LIMIT,
) -> list[Ask]:
    """At least `factor` x capacity tickets per event from buyers who sometimes exceed the
    per-user limit. About 0.9 x capacity arrives over the first 70% of the sale, the rest as a
    rush in the last 30%: stock lasts while the faults happen, and the rush sells it out."""
    asks: list[tuple[int, str, int, float]] = []
    for event_id, capacity in events.items():
        target = math.ceil(factor * capacity)
        users = [f"e{event_id}-buyer{n}" for n in range(max(2, target // limit))]
        wanted: Counter[str] = Counter()
        total = 0
        while total < target or sum(min(limit, q) for q in wanted.values()) < 1.2 * capacity:
            user, quantity = rng.choice(users), rng.randint(1, MAX_QUANTITY)
            at = (
                rng.uniform(0, 0.7 * duration_s)
                if total < 0.9 * capacity
                else rng.uniform(0.7 * duration_s, duration_s)
            )
            asks.append((event_id, user, quantity, at))
            wanted[user] += quantity
            total += quantity
    asks.sort(key=lambda a: a[3])
    return [
        Ask(i, event_id, user, quantity, f"chaos-{uuid.uuid4().hex}", at)
        for i, (event_id, user, quantity, at) in enumerate(asks)
    ]


@dataclass
class Attempt:
    start: float  # monotonic
    end: float
    status: int | str  # HTTP status, or "transport"


@dataclass
class Outcome:
    ask: Ask
    status: int | str = "pending"  # final: 202, 409 (sold out), another HTTP code, "gave_up"
    booking_id: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    replays: list[tuple[int | str, str | None]] = field(default_factory=list)


class Traffic:
    """Paced buyers with bounded concurrency. Each request keeps its Idempotency-Key across
    retries (503, 409 "in progress", 5xx, transport errors), bounded in count and time."""

    def __init__(
        self,
        url: str,
        asks: list[Ask],
        rng: random.Random,
        *,
        concurrency: int = 24,
        max_attempts: int = 40,
        deadline_s: float = 60.0,
        timeout_s: float = 10.0,
        flaky_share: float = 0.0,
        replay_share: float = 0.0,
        replay_window_s: float = 0.0,
    ) -> None:
        self.url = url
        self.outcomes = [Outcome(ask) for ask in asks]
        self.rng = rng
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s
        self.flaky_share = flaky_share  # first attempt's answer is lost (tiny client timeout)
        self.replay_share = replay_share  # accepted requests sent again later with their key
        self.replay_window_s = replay_window_s
        self.started = 0.0
        self.done = asyncio.Event()

    @property
    def accepted(self) -> dict[str, Outcome]:
        return {o.booking_id: o for o in self.outcomes if o.booking_id is not None}

    def count(self, status: int | str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def codes(self) -> Counter[str]:
        return Counter(str(a.status) for o in self.outcomes for a in o.attempts)

    def attempts(self) -> Iterable[Attempt]:
        return (a for o in self.outcomes for a in o.attempts)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        gate = asyncio.Semaphore(self.concurrency)
        self.started = self.started or time.monotonic()
        try:
            async with httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout_s, limits=limits
            ) as client:
                await asyncio.gather(*(self._buyer(client, gate, o) for o in self.outcomes))
        finally:
            self.done.set()

    async def _buyer(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, out: Outcome
    ) -> None:
        await asyncio.sleep(max(0.0, self.started + out.ask.at - time.monotonic()))
        flaky = self.rng.random() < self.flaky_share
        async with gate:
            out.status, out.booking_id = await self._request(client, out, flaky)
        if out.status == 202 and self.rng.random() < self.replay_share:
            # Replays come back before the sale ends (or right after, for late buyers).
            end = self.started + self.replay_window_s
            for _ in range(self.rng.randint(1, 2)):
                await asyncio.sleep(self.rng.uniform(0.2, max(0.3, end - time.monotonic())))
                async with gate:
                    out.replays.append(await self._request(client, out, flaky=False))

    async def _request(
        self, client: httpx.AsyncClient, out: Outcome, flaky: bool
    ) -> tuple[int | str, str | None]:
        ask = out.ask
        body = {"event_id": ask.event_id, "user_id": ask.user_id, "quantity": ask.quantity}
        headers = {"Idempotency-Key": ask.key}
        deadline = time.monotonic() + self.deadline_s
        delay = 0.1
        for attempt in range(self.max_attempts):
            start = time.monotonic()
            # A flaky first attempt: the request leaves, the client stops listening at once,
            # as when a response is lost on the way back. The retry must find the same booking.
            timeout = httpx.Timeout(self.timeout_s, read=0.002) if flaky and attempt == 0 else None
            retry_after: float | None = None
            try:
                if timeout is None:
                    response = await client.post("/api/bookings", json=body, headers=headers)
                else:
                    response = await client.post(
                        "/api/bookings", json=body, headers=headers, timeout=timeout
                    )
            except httpx.TransportError:
                out.attempts.append(Attempt(start, time.monotonic(), "transport"))
            else:
                code = response.status_code
                out.attempts.append(Attempt(start, time.monotonic(), code))
                if code == 202:
                    return 202, str(response.json()["booking_id"])
                if code == 409 and _json(response).get("reason") == "SOLD_OUT":
                    return 409, None
                if code not in (409, 429) and code < 500:
                    return code, None  # 400/404/422: a final answer (and a failed check)
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", ""))
            if time.monotonic() > deadline:
                break
            pause = min(retry_after if retry_after is not None else delay, 1.0)
            await asyncio.sleep(pause * self.rng.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)
        return "gave_up", None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ------------------------------------------------------------------------ observation


class Api:
    """The admin's and the poller's view through the scenario's API."""

    def __init__(self, client: httpx.AsyncClient, admin_token: str) -> None:
        self.http = client
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    async def create_event(self, capacity: int, limit: int, name: str) -> int:
        response = await self.http.post(
            "/api/events",
            json={"name": name, "capacity": capacity, "per_user_limit": limit},
            headers=self.admin,
        )
        if response.status_code != 201:
            raise RuntimeError(f"could not create event: {response.status_code} {response.text}")
        return int(response.json()["id"])

    async def audit(self, event_id: int) -> dict[str, Any] | None:
        try:
            response = await self.http.get(f"/api/events/{event_id}/audit", headers=self.admin)
        except httpx.TransportError:
            return None
        return _json(response) if response.status_code == 200 else None

    async def event(self, event_id: int) -> dict[str, Any] | None:
        try:
            response = await self.http.get(f"/api/events/{event_id}")
        except httpx.TransportError:
            return None
        return _json(response) if response.status_code == 200 else None

    async def booking(self, booking_id: str) -> tuple[int, dict[str, Any]]:
        try:
            response = await self.http.get(f"/api/bookings/{booking_id}")
        except httpx.TransportError:
            return 0, {}
        return response.status_code, _json(response)

    async def ready(self) -> dict[str, Any]:
        try:
            response = await self.http.get("/ready")
        except httpx.TransportError:
            return {}
        return _json(response)


async def query(settings: Settings, text: str, params: dict[str, Any] | None = None) -> list[Any]:
    """One query on the scenario's database through a fresh connection (survives restarts)."""
    async with (
        await psycopg.AsyncConnection.connect(
            settings.database_url, row_factory=dict_row, connect_timeout=5
        ) as conn,
        conn.cursor() as cur,
    ):
        await cur.execute(text.encode(), params or {})
        return await cur.fetchall() if cur.description else []


async def decided_ids(settings: Settings, booking_ids: set[str]) -> set[str]:
    """Of these booking ids, the ones PostgreSQL has decided."""
    rows = await query(
        settings,
        "SELECT booking_id::text AS id FROM bookings WHERE booking_id::text = ANY(%(ids)s)",
        {"ids": sorted(booking_ids)},
    )
    return {r["id"] for r in rows}


@dataclass
class Offsets:
    """What the consumer group committed, next to what the topic holds."""

    committed: dict[int, int]
    records: list[tuple[int, int, str | None]]  # (partition, offset, booking id)

    def below_committed(self) -> list[str | None]:
        return [b for p, o, b in self.records if o < self.committed.get(p, 0)]

    def above_committed(self) -> list[str | None]:
        return [b for p, o, b in self.records if o >= self.committed.get(p, 0)]


async def read_offsets(settings: Settings, timeout_s: float = 20.0) -> Offsets:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        raw = await admin.list_consumer_group_offsets(settings.consumer_group)
    finally:
        await admin.close()
    committed = {tp.partition: m.offset for tp, m in raw.items() if tp.topic == settings.topic}
    return Offsets(committed, await read_topic(settings, settings.topic, timeout_s))


async def read_topic(
    settings: Settings, topic: str, timeout_s: float = 20.0
) -> list[tuple[int, int, str | None]]:
    """Every record of `topic` up to its current end: (partition, offset, booking id).
    The id is None for what is no booking: poison, and requests the broker appended after
    the API had answered 503 (the worker drops those by design)."""
    return [
        (r.partition, r.offset, _booking_id(r))
        for r in await read_records(settings, topic, timeout_s)
    ]


async def read_records(
    settings: Settings, topic: str, timeout_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` up to its current end, outside any consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # else assign() may reset to the end meanwhile
    )
    await consumer.start()
    try:
        # ensure_topics creates the booking topic with topic_partitions, the DLQ with one.
        count = settings.topic_partitions if topic == settings.topic else 1
        tps = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while await _behind(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            batch = await consumer.getmany(*tps, timeout_ms=500)
            out += [r for tp, rs in batch.items() for r in rs if r.offset < ends[tp]]
        return out
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """True while the consumer has not read some partition up to `ends`."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def _booking_id(record: ConsumerRecord[bytes, bytes]) -> str | None:
    try:
        request = decode_request(record.value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return None if appended_after_expiry(record, request) else str(request.booking_id)


# ---------------------------------------------------------------------------- results


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioResult:
    name: str
    title: str
    requests: int = 0
    demand: int = 0  # tickets asked for
    accepted: int = 0
    confirmed: int = 0
    rejected: int = 0
    sold: int = 0
    capacity: int = 0
    sold_out_409: int = 0
    faults: list[str] = field(default_factory=list)
    converge_s: float | None = None
    checks: list[Check] = field(default_factory=list)
    checks_before_reconcile: list[Check] = field(default_factory=list)
    reconciler: str | None = None  # its output, when it was needed
    notes: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    audits: dict[int, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0
    log_dir: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAIL"
        return "PASS (reconciled)" if self.reconciler is not None else "PASS"

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no check named {name!r}")

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def report(self) -> str:
        lines = [f"{self.name}: {self.verdict} ({self.title}); logs in {self.log_dir}"]
        if self.error:
            lines.append(f"  error: {self.error}")
        lines += [f"  fault  {f}" for f in self.faults]
        for c in self.checks:
            lines.append(f"  {'ok  ' if c.ok else 'FAIL'}   {c.name}: {c.detail}")
        if self.reconciler is not None:
            lines.append(f"  reconciler needed: {self.reconciler.strip()[:500]}")
        lines += [f"  note   {n}" for n in self.notes]
        lines.append(f"  codes  {dict(sorted(self.codes.items()))}")
        return "\n".join(lines)


def table(results: list[ScenarioResult]) -> str:
    head = (
        f"{'scenario':<17}{'requests':>9}{'accepted':>9}{'confirmed':>10}{'rejected':>9}"
        f"{'409':>6}{'sold/cap':>10}{'faults':>7}{'converge':>10}  verdict"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        converge = f"{r.converge_s:.1f}s" if r.converge_s is not None else "-"
        rows.append(
            f"{r.name:<17}{r.requests:>9}{r.accepted:>9}{r.confirmed:>10}{r.rejected:>9}"
            f"{r.sold_out_409:>6}{f'{r.sold}/{r.capacity}':>10}{len(r.faults):>7}{converge:>10}"
            f"  {r.verdict}"
        )
    return "\n".join(rows)


# ------------------------------------------------------------------------ the harness


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    inject: Callable[[Run], Awaitable[None]]
    events: int = 1
    workers: int = 1
    partitions: int = 3
    duration_s: float = 20.0
    start_workers: bool = True
    flaky_share: float = 0.0
    replay_share: float = 0.0


@dataclass
class Run:
    """What a scenario's fault injection works with."""

    spec: Spec
    settings: Settings
    pipeline: ChaosPipeline
    stack: Stack
    api: Api
    events: dict[int, int]  # event id -> capacity
    traffic: Traffic
    rng: random.Random
    result: ScenarioResult
    t0: float = field(default_factory=time.monotonic)
    expected_exits: set[int] = field(default_factory=set)
    seen_exits: set[int] = field(default_factory=set)
    supervise: bool = True
    verbose: bool = True
    collect: list[Check] | None = None  # where expect() puts checks (else the result)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        if self.verbose:
            _say(self.spec.name, self.elapsed, text)

    def fault(self, text: str) -> None:
        self.result.faults.append(f"{self.elapsed:5.1f}s {text}")
        self.say(f"FAULT {text}")

    def note(self, text: str) -> None:
        self.result.notes.append(text)
        self.say(f"note: {text}")

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        (self.result.checks if self.collect is None else self.collect).append(
            Check(name, bool(ok), detail)
        )
        if not ok:
            self.say(f"CHECK FAILED {name}: {detail}")
        return bool(ok)

    def start_worker(self, fault_point: str = "") -> subprocess.Popen[bytes]:
        settings = msgspec.structs.replace(self.settings, fault_point=fault_point)
        proc = self.pipeline.start_worker(settings=settings)
        if fault_point:
            self.expected_exits.add(proc.pid)
        self.say(
            f"worker {proc.pid} started{f' (fault point {fault_point})' if fault_point else ''}"
        )
        return proc

    async def stop_worker(
        self, proc: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float = 25.0
    ) -> int | None:
        self.expected_exits.add(proc.pid)
        if proc.poll() is None:
            proc.send_signal(sig)
        return await self.pipeline.wait_exit(proc, timeout_s)

    async def sold(self) -> int | None:
        """Tickets sold over the scenario's events, per PostgreSQL (None while it is down)."""
        try:
            rows = await query(
                self.settings,
                "SELECT coalesce(sum(sold), 0)::int AS sold FROM events WHERE id = ANY(%(ids)s)",
                {"ids": list(self.events)},
            )
        except psycopg.Error:
            return None
        return int(rows[0]["sold"])

    async def decided(self) -> int | None:
        try:
            rows = await query(self.settings, "SELECT count(*)::int AS n FROM bookings")
        except psycopg.Error:
            return None
        return int(rows[0]["n"])

    async def held(self) -> dict[int, int]:
        """Tickets each event's worker holds in Redis right now (reserved, not yet settled)."""
        client = open_redis(self.settings)
        try:
            keys = [f"{self.settings.redis_prefix}:{{ev:{e}}}:held" for e in self.events]
            values = await client.mget(keys)
        finally:
            await client.aclose()
        return {e: int(str(v or 0)) for e, v in zip(self.events, values, strict=True)}

    async def wait_mid_batch(self, timeout_s: float) -> tuple[int, int] | None:
        """Poll Redis every millisecond or so until some event's held stock grows: a worker
        has just reserved for a batch and not settled it yet, i.e. it is mid-batch. (Holds a
        killed worker left behind do not count: they only shrink, when a replay settles.)
        Returns (event, tickets held)."""
        client = open_redis(self.settings)
        keys = [f"{self.settings.redis_prefix}:{{ev:{e}}}:held" for e in self.events]
        deadline = time.monotonic() + timeout_s
        last: list[int] | None = None
        try:
            while time.monotonic() < deadline:
                now = [int(str(v or 0)) for v in await client.mget(keys)]
                if last is not None:
                    for event_id, before, held in zip(self.events, last, now, strict=True):
                        if held > before:
                            return event_id, held
                last = now
                await asyncio.sleep(0.001)
        finally:
            await client.aclose()
        return None

    def owner_of(self, event_id: int) -> subprocess.Popen[bytes] | None:
        """The live worker whose log says it consumes the event's partition."""
        part = partition_of(event_id, self.spec.partitions)
        for worker in self.pipeline.live_workers():
            if part in (self.pipeline.assignment(worker) or ()):
                return worker
        return None

    async def wait_sold(self, share: float, timeout_s: float) -> bool:
        """Until `share` of the capacity is sold (bounded): a fault then lands mid-sale."""
        wanted = share * sum(self.events.values())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            sold = await self.sold()
            if sold is not None and sold >= wanted:
                return True
            await asyncio.sleep(0.1)
        self.note(f"{share:.0%} of the capacity was not sold within {timeout_s}s")
        return False

    async def wait_accepted(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.traffic.done.is_set():
            if len(self.traffic.accepted) >= count:
                return True
            await asyncio.sleep(0.05)
        return len(self.traffic.accepted) >= count

    async def at(self, share: float) -> None:
        """Sleep until `share` of the traffic's planned duration has passed."""
        target = self.traffic.started + share * self.spec.duration_s
        await asyncio.sleep(max(0.0, target - time.monotonic()))

    async def check_offsets(self, label: str) -> Offsets | None:
        """Every message below the committed offset has its booking in PostgreSQL."""
        try:
            offsets = await read_offsets(self.settings)
            below = {b for b in offsets.below_committed() if b is not None}
            decided = await decided_ids(self.settings, below)
        except (KafkaError, OSError, TimeoutError, psycopg.Error) as exc:
            self.note(f"offset check {label} skipped: {exc!r}")
            return None
        missing = below - decided
        missing -= await self.abandoned(missing)
        self.expect(
            f"offsets committed only for decided bookings ({label})",
            not missing,
            f"{len(below)} bookings below committed offsets {offsets.committed}, "
            f"{len(missing)} not in PostgreSQL {sorted(missing)[:3]}",
        )
        return offsets

    async def abandoned(self, booking_ids: set[str]) -> set[str]:
        """Of these, the ones the API answered 503 for and marked (the worker drops them)."""
        client = open_redis(self.settings)
        try:
            cache = DecisionCache(client, self.settings.redis_prefix, 60)
            marked = await cache.abandoned([uuid.UUID(b) for b in booking_ids])
        finally:
            await client.aclose()
        return {str(b) for b in marked}

    async def supervisor(self) -> None:
        """A worker (or the API) that dies without being told to is noted and restarted,
        as a process supervisor would."""
        while True:
            await asyncio.sleep(0.2)
            for proc in list(self.pipeline.workers):
                if proc.poll() is None or proc.pid in self.seen_exits:
                    continue
                self.seen_exits.add(proc.pid)
                if proc.pid in self.expected_exits:
                    continue
                log = self.pipeline.log_of(proc)
                tail = " | ".join(log.strip().splitlines()[-3:])
                if proc.returncode == 0 and re.search(r"(SIGTERM|SIGINT): finishing", log):
                    # Stopped cleanly by a signal the runner did not send (on a shared machine,
                    # someone's `pkill -f`): not the worker's fault; restart it.
                    self.note(f"worker {proc.pid} stopped by an external signal: {tail}")
                else:
                    self.note(f"worker {proc.pid} exited by itself with {proc.returncode}: {tail}")
                    self.result.checks.append(
                        Check(
                            f"worker {proc.pid} did not crash",
                            False,
                            f"exit {proc.returncode}; log {self.pipeline.logs[proc.pid]}",
                        )
                    )
                if self.supervise:
                    self.start_worker()
            api = self.pipeline.api
            if api is not None and api.poll() is not None and api.pid not in self.seen_exits:
                self.seen_exits.add(api.pid)
                self.result.checks.append(
                    Check("API did not crash", False, f"exit {api.returncode}")
                )
                self.note(f"API exited by itself with {api.returncode}; restarting it")
                if self.supervise:
                    self.pipeline.start_api()


async def run_scenario(
    name: str,
    base: Settings | None = None,
    *,
    capacity: int = DEFAULT_CAPACITY,
    demand_factor: float = DEFAULT_DEMAND_FACTOR,
    log_dir: Path | None = None,
    seed: int | None = None,
    verbose: bool = True,
    keep: bool = False,
) -> ScenarioResult:
    """Run one scenario end to end and return its checks. Never leaves a service down."""
    spec = SCENARIOS[name]
    base = base or Settings.from_env()
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    result = ScenarioResult(name, spec.title, log_dir=str(log_dir))
    result.notes.append(f"seed {seed}")
    stack = Stack(log_dir / "stack.log")
    started = time.monotonic()
    sandbox: Sandbox | None = None
    pipeline: ChaosPipeline | None = None
    try:
        await stack.heal()
        sandbox = await Sandbox.create(base, spec.partitions)
        pipeline = ChaosPipeline(sandbox.settings, log_dir=log_dir)
        pipeline.start_api()
        await pipeline.wait_ready(timeout_s=60, path="/ready")
        await _run(
            spec, sandbox.settings, pipeline, stack, rng, result, capacity, demand_factor, verbose
        )
    except Exception as exc:  # noqa: BLE001 - reported as the scenario's failure
        result.error = f"{type(exc).__name__}: {exc}"
        _append(log_dir / "error.log", traceback.format_exc())
        if verbose:
            _say(name, time.monotonic() - started, f"ERROR {result.error}")
    finally:
        if pipeline is not None:
            await pipeline.stop_all()
        try:
            await stack.heal()
        except StackError as exc:
            result.error = result.error or f"could not bring the stack back up: {exc}"
            raise
        finally:
            if sandbox is not None and (result.ok or not keep):
                await sandbox.destroy()
            elif sandbox is not None:
                result.notes.append(
                    f"kept database, Redis prefix and topics {sandbox.db_name}[.*] for inspection"
                )
            result.duration_s = time.monotonic() - started
    return result


async def _run(
    spec: Spec,
    settings: Settings,
    pipeline: ChaosPipeline,
    stack: Stack,
    rng: random.Random,
    result: ScenarioResult,
    capacity: int,
    demand_factor: float,
    verbose: bool,
) -> None:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=10, limits=limits) as client:
        api = Api(client, settings.admin_token)
        events = await _create_events(api, spec, capacity)
        asks = plan_demand(events, demand_factor, spec.duration_s, rng)
        traffic = Traffic(
            pipeline.url,
            asks,
            rng,
            flaky_share=spec.flaky_share,
            replay_share=spec.replay_share,
            replay_window_s=spec.duration_s,
        )
        run = Run(
            spec, settings, pipeline, stack, api, events, traffic, rng, result, verbose=verbose
        )
        run.say(
            f"sale: {len(asks)} requests for {sum(a.quantity for a in asks)} tickets, events "
            f"{events} (capacity each {capacity}), over {spec.duration_s:.0f}s; "
            f"logs {pipeline.log_dir}"
        )
        if spec.start_workers:
            for _ in range(spec.workers):
                run.start_worker()
        supervisor = asyncio.create_task(run.supervisor())
        traffic.started = time.monotonic()  # the clock of Run.at()
        sale = asyncio.create_task(traffic.run())
        try:
            await spec.inject(run)
            await asyncio.wait_for(asyncio.shield(sale), spec.duration_s + 90)
            run.say(f"traffic done: {traffic.codes()}")
            await stack.heal()
            if not pipeline.live_workers():
                run.note("no worker alive after the faults: starting one")
                run.start_worker()
            healed = time.monotonic()
            run.say("faults healed; waiting for every accepted booking to be decided")
            views = await _converge(run, CONVERGE_TIMEOUT_S)
            if views is not None:
                result.converge_s = time.monotonic() - healed
            invariants = await _invariants(run, views)
            if not all(c.ok for c in invariants) and RECONCILER.exists():
                result.checks_before_reconcile = invariants
                invariants = await _reconcile(run)
            result.checks += invariants
        finally:
            run.supervise = False
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            if not sale.done():
                sale.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sale
            _summarise(run)


async def _create_events(api: Api, spec: Spec, capacity: int) -> dict[int, int]:
    """`spec.events` events whose requests land on distinct partitions (one per event)."""
    events: dict[int, int] = {}
    used: set[int] = set()
    for n in range(50):
        event_id = await api.create_event(capacity, PER_USER_LIMIT, f"chaos {spec.name} {n}")
        part = partition_of(event_id, spec.partitions)
        if part not in used:
            used.add(part)
            events[event_id] = capacity
        if len(events) == spec.events:
            return events
    raise RuntimeError(f"could not place {spec.events} events on distinct partitions")


async def _converge(run: Run, timeout_s: float) -> dict[str, dict[str, Any]] | None:
    """Poll until every accepted booking reads as decided and every audit is CLEAN. Returns
    the booking views, or None if that did not happen in time (the checks then say what)."""
    deadline = time.monotonic() + timeout_s
    views = await _decide_all(run, deadline)
    if views is None:
        return None
    while time.monotonic() < deadline:
        audits = [await run.api.audit(e) for e in run.events]
        if all(a is not None and a["verdict"] == "CLEAN" for a in audits):
            return views
        await asyncio.sleep(0.25)
    return None


async def _decide_all(run: Run, deadline: float) -> dict[str, dict[str, Any]] | None:
    pending = set(run.traffic.accepted)
    views: dict[str, dict[str, Any]] = {}
    not_found: set[str] = set()
    gate = asyncio.Semaphore(32)

    async def one(booking_id: str) -> None:
        async with gate:
            code, body = await run.api.booking(booking_id)
        if code == 200 and body.get("status") in TERMINAL:
            views[booking_id] = body
            pending.discard(booking_id)
        elif code == 404:
            not_found.add(booking_id)

    while pending and time.monotonic() < deadline:
        await asyncio.gather(*(one(b) for b in list(pending)))
        if pending:
            await asyncio.sleep(0.25)
    if not_found:
        run.note(
            f"GET /api/bookings/{{id}} answered 404 for {len(not_found)} accepted bookings "
            "while they were undecided"
        )
    if pending:
        run.note(f"{len(pending)} accepted bookings still undecided, e.g. {sorted(pending)[:3]}")
        return None
    return views


async def _invariants(run: Run, views: dict[str, dict[str, Any]] | None) -> list[Check]:
    run.collect = []
    try:
        await _verify(run, views)
        return run.collect
    finally:
        run.collect = None


async def _reconcile(run: Run) -> list[Check]:
    """Run `python -m consumer.reconcile` once, then converge and check the invariants again."""
    failed = [c.name for c in run.result.checks_before_reconcile if not c.ok]
    run.say(f"invariants failed ({failed}): running the reconciler")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer.reconcile",
        cwd=ROOT,
        env=settings_env(run.settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    run.result.reconciler = f"exit {proc.returncode}: {out.decode(errors='replace')}"
    _append(Path(run.result.log_dir) / "reconcile.log", run.result.reconciler)
    views = await _converge(run, 20.0)
    return await _invariants(run, views)


# ------------------------------------------------------------------------- the checks


async def _verify(run: Run, views: dict[str, dict[str, Any]] | None) -> None:
    traffic, expect = run.traffic, run.expect
    accepted = traffic.accepted
    finals = Counter(str(o.status) for o in traffic.outcomes)
    expect(
        "every request got a final answer within its retries",
        finals["gave_up"] == 0 and finals["pending"] == 0,
        f"finals {dict(finals)}",
    )
    expect(
        "final answers are 202 or 409 SOLD_OUT",
        set(finals) <= {"202", "409"},
        f"finals {dict(finals)}",
    )
    replays = [(o, r) for o in traffic.outcomes for r in o.replays]
    if replays:
        same = [o.booking_id == bid for o, (code, bid) in replays if code == 202]
        expect(
            "replays with the same Idempotency-Key return the same booking",
            len(same) == len(replays) and all(same),
            f"{len(replays)} replays, {sum(same)} answered 202 with the same booking id",
        )
    expect(
        "every accepted booking is decided (API)",
        views is not None and set(views) == set(accepted),
        f"{len(accepted)} accepted, {len(views or {})} read back decided",
    )
    views = views or {}

    # --- through the API
    wrong = [
        b
        for b, v in views.items()
        if (v["event_id"], v["user_id"], v["quantity"])
        != (accepted[b].ask.event_id, accepted[b].ask.user_id, accepted[b].ask.quantity)
    ]
    expect("bookings read back as requested (API)", not wrong, f"{len(wrong)} differ: {wrong[:3]}")
    bad_seats = [
        b
        for b, v in views.items()
        if (v["status"] == "CONFIRMED" and (len(v["seats"]) != v["quantity"] or v["reason"]))
        or (
            v["status"] == "REJECTED"
            and (v["seats"] or v["reason"] not in ("SOLD_OUT", "LIMIT_EXCEEDED"))
        )
    ]
    expect(
        "confirmed bookings have their seats, rejected ones a reason and none (API)",
        not bad_seats,
        f"{len(bad_seats)} wrong: {bad_seats[:3]}",
    )
    demand = Counter[int]()
    for o in traffic.outcomes:
        demand[o.ask.event_id] += o.ask.quantity
    for event_id, capacity in run.events.items():
        mine = [v for v in views.values() if v["event_id"] == event_id]
        seats = [s for v in mine if v["status"] == "CONFIRMED" for s in v["seats"]]
        confirmed_qty = sum(v["quantity"] for v in mine if v["status"] == "CONFIRMED")
        per_user = Counter[str]()
        for v in mine:
            if v["status"] == "CONFIRMED":
                per_user[v["user_id"]] += v["quantity"]
        expect(
            f"event {event_id}: no seat twice (API)",
            len(seats) == len(set(seats)),
            f"{len(seats)} seats, {len(set(seats))} distinct",
        )
        expect(
            f"event {event_id}: confirmed <= capacity, == capacity as demand exceeds it (API)",
            confirmed_qty == capacity if demand[event_id] > capacity else confirmed_qty <= capacity,
            f"confirmed {confirmed_qty}, capacity {capacity}, demand {demand[event_id]}",
        )
        top = max(per_user.values(), default=0)
        expect(
            f"event {event_id}: no user above the limit (API)",
            top <= PER_USER_LIMIT,
            f"most by one user {top}, limit {PER_USER_LIMIT}",
        )
        audit = await run.api.audit(event_id)
        run.result.audits[event_id] = audit or {}
        expect(
            f"event {event_id}: audit CLEAN and consistent",
            audit is not None
            and audit["verdict"] == "CLEAN"
            and audit["sold"] == confirmed_qty == audit["seats_assigned"]
            and audit["confirmed_bookings"] == sum(1 for v in mine if v["status"] == "CONFIRMED")
            and audit["redis_available"] == capacity - audit["sold"]
            and audit["double_assigned_seats"] == 0
            and audit.get("misassigned_seats", 0) == 0
            and not audit["oversold"],
            f"audit {audit}",
        )
        view = await run.api.event(event_id)
        expect(
            f"event {event_id}: event view agrees",
            view is not None
            and view["sold"] == confirmed_qty
            and view["available"] == capacity - confirmed_qty,
            f"view {view}",
        )

    # --- by SQL, on the scenario's own database
    try:
        await _verify_sql(run, views, demand)
    except psycopg.Error as exc:
        expect("ledger readable by SQL", False, repr(exc))

    # --- Kafka: offsets and the dead-letter topic
    await run.check_offsets("at the end")
    try:
        parked = await read_topic(run.settings, run.settings.dlq_topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        run.note(f"dead-letter topic unreadable: {exc!r}")
    else:
        expect("nothing dead-lettered", not parked, f"{len(parked)} dead letters")


async def _verify_sql(run: Run, views: dict[str, dict[str, Any]], demand: Counter[int]) -> None:
    expect, s = run.expect, run.settings
    accepted = set(run.traffic.accepted)
    rows = await query(
        s,
        "SELECT booking_id::text AS id, event_id, user_id, quantity, status FROM bookings "
        "WHERE event_id = ANY(%(ids)s)",
        {"ids": list(run.events)},
    )
    ids = [r["id"] for r in rows]
    decided = set(ids)
    expect(
        "202 booking ids == decided booking ids (SQL)",
        decided == accepted,
        f"{len(accepted)} accepted, {len(decided)} decided; accepted but not decided "
        f"{sorted(accepted - decided)[:3]} ({len(accepted - decided)}); decided but never "
        f"accepted {sorted(decided - accepted)[:3]} ({len(decided - accepted)})",
    )
    expect("no booking id twice (SQL)", len(ids) == len(decided), f"{len(ids)} rows")
    differ = [r["id"] for r in rows if r["id"] in views and views[r["id"]]["status"] != r["status"]]
    expect("API and SQL agree on every status", not differ, f"{len(differ)} differ: {differ[:3]}")
    per_event = await query(
        s,
        """
        SELECT e.id, e.capacity, e.sold, e.per_user_limit,
               (SELECT coalesce(sum(quantity), 0) FROM bookings b
                 WHERE b.event_id = e.id AND b.status = 'CONFIRMED')::int AS confirmed,
               (SELECT count(*) FROM seats t WHERE t.event_id = e.id AND t.booking_id IS NOT NULL)
                 ::int AS seats_taken,
               (SELECT count(*) FROM (SELECT label FROM seats t WHERE t.event_id = e.id
                  AND t.booking_id IS NOT NULL GROUP BY label HAVING count(*) > 1) d)::int
                 AS seats_twice,
               (SELECT coalesce(max(q), 0) FROM (SELECT sum(quantity) AS q FROM bookings b
                  WHERE b.event_id = e.id AND b.status = 'CONFIRMED' GROUP BY user_id) u)::int
                 AS top_user,
               (SELECT count(*) FROM bookings b
                  LEFT JOIN (SELECT t.booking_id, count(*) AS n FROM seats t
                             WHERE t.event_id = e.id AND t.booking_id IS NOT NULL
                             GROUP BY t.booking_id) m ON m.booking_id = b.booking_id
                  WHERE b.event_id = e.id AND (
                    (b.status = 'CONFIRMED' AND b.quantity <> coalesce(m.n, 0))
                    OR (b.status = 'REJECTED' AND m.n IS NOT NULL))
               )::int AS wrong_seats,
               (SELECT count(*) FROM seats t WHERE t.event_id = e.id AND t.booking_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = t.booking_id
                                  AND b.event_id = e.id AND b.status = 'CONFIRMED'))::int
                 AS stray_seats
        FROM events e WHERE e.id = ANY(%(ids)s) ORDER BY e.id
        """,
        {"ids": list(run.events)},
    )
    for e in per_event:
        eid = e["id"]
        expect(
            f"event {eid}: sold == sum(confirmed) <= capacity (SQL)",
            e["sold"] == e["confirmed"] <= e["capacity"],
            f"sold {e['sold']}, confirmed {e['confirmed']}, capacity {e['capacity']}",
        )
        expect(
            f"event {eid}: no undersell (SQL)",
            e["confirmed"] == e["capacity"] or demand[eid] <= e["capacity"],
            f"confirmed {e['confirmed']} of {e['capacity']} with demand {demand[eid]}",
        )
        expect(
            f"event {eid}: seats taken == sold, none twice, each booking its own (SQL)",
            e["seats_taken"] == e["sold"]
            and e["seats_twice"] == e["wrong_seats"] == e["stray_seats"] == 0,
            f"seats taken {e['seats_taken']}, labels twice {e['seats_twice']}, "
            f"bookings with wrong seats {e['wrong_seats']}, seats held by no confirmed booking "
            f"of the event {e['stray_seats']}",
        )
        expect(
            f"event {eid}: no user above the limit (SQL)",
            e["top_user"] <= e["per_user_limit"],
            f"most by one user {e['top_user']}, limit {e['per_user_limit']}",
        )


def _summarise(run: Run) -> None:
    r, traffic = run.result, run.traffic
    r.requests = len(traffic.outcomes)
    r.demand = sum(o.ask.quantity for o in traffic.outcomes)
    r.accepted = len(traffic.accepted)
    r.sold_out_409 = traffic.count(409)
    r.codes = dict(traffic.codes())
    r.capacity = sum(run.events.values())
    r.sold = sum(int(a.get("sold", 0)) for a in r.audits.values())
    r.confirmed = sum(int(a.get("confirmed_bookings", 0)) for a in r.audits.values())
    r.rejected = sum(int(a.get("rejected_bookings", 0)) for a in r.audits.values())


# -------------------------------------------------------------------------- scenarios


async def kill9_workers(run: Run, kills: int = 12, every: int = 4) -> None:
    """Kill -9 workers at random moments, 12 times in one sale, restarting each at once.
    Every fourth kill waits until the group consumes again and strikes the worker that is
    mid-batch (its event's held stock just grew in Redis: reserved, not yet settled); the
    others strike the replacement at a random moment of its start (imports, the reconciler
    run at start, joining the group). A member killed while in the group stalls the whole
    group until its session expires (aiokafka's default 10 s), which paces the mid-batch kills."""
    pipeline = run.pipeline
    mid_batch = 0
    newest = None
    await asyncio.sleep(run.rng.uniform(0.5, 1.5))
    for n in range(kills):
        live = pipeline.live_workers() or [run.start_worker()]
        victim = newest if newest is not None and newest.poll() is None else run.rng.choice(live)
        state = ""
        if n % every == 0:
            caught = await run.wait_mid_batch(timeout_s=20)
            if caught is not None:
                victim = run.owner_of(caught[0]) or victim
                state = f"mid-batch, {caught[1]} tickets held in Redis"
                mid_batch += 1
        else:
            await asyncio.sleep(run.rng.uniform(0.1, 1.5))
        parts = pipeline.assignment(victim)
        if not state:
            started = "worker started:" in pipeline.log_of(victim)
            state = (
                f"consuming partitions {parts}"
                if parts
                else ("joining the group" if started else "starting")
            )
        await run.stop_worker(victim, signal.SIGKILL, timeout_s=10)
        run.fault(f"kill -9 worker {victim.pid} ({state})")
        newest = run.start_worker()
    run.expect(
        "at least 10 kill -9 in one sale, some mid-batch",
        len(run.result.faults) >= 10 and mid_batch >= 1,
        f"{len(run.result.faults)} kills, {mid_batch} of them mid-batch",
    )
    await run.check_offsets("after the last kill")


async def fault_points(run: Run) -> None:
    """The worker SIGKILLs itself between the Redis reservation and the PostgreSQL commit,
    then (its successor) between the PostgreSQL commit and the offset commit."""
    pipeline = run.pipeline
    await run.wait_accepted(20, timeout_s=10)
    for point in ("after_reserve", "after_db_commit"):
        decided_before = await run.decided()
        worker = run.start_worker(fault_point=point)
        rc = await pipeline.wait_exit(worker, timeout_s=30)
        hit = f"fault injection: SIGKILL at {point}" in pipeline.log_of(worker)
        run.fault(f"worker {worker.pid} killed itself at {point} (exit {rc})")
        run.expect(
            f"worker died by SIGKILL at {point}",
            rc == -signal.SIGKILL and hit,
            f"exit {rc}, log says so: {hit}",
        )
        offsets = await run.check_offsets(f"after the kill at {point}")
        decided_after = await run.decided()
        if point == "after_reserve":
            audits = [await run.api.audit(e) for e in run.events]
            held = sum(a["in_flight"] for a in audits if a)
            run.expect(
                "killed after the reservation: stock held in Redis, nothing new in PostgreSQL",
                held > 0 and decided_after == decided_before,
                f"held {held}, decided before {decided_before} after {decided_after}",
            )
        elif offsets is not None:
            ahead = {b for b in offsets.above_committed() if b is not None}
            decided_ahead = len(await decided_ids(run.settings, ahead))
            run.expect(
                "killed after the PostgreSQL commit: decided bookings above the committed offset",
                decided_ahead > 0,
                f"{decided_ahead} decided bookings not yet committed in Kafka",
            )
    run.start_worker()  # without the fault point


async def rebalance(run: Run) -> None:
    """Three workers; a fourth joins mid-sale, later one of the first three leaves (SIGTERM)."""
    pipeline = run.pipeline
    first = list(pipeline.live_workers())
    await run.at(0.25)
    added = run.start_worker()
    joined = await pipeline.wait_assigned(added, timeout_s=20)
    run.fault(f"worker {added.pid} joined the group (partitions {pipeline.assignment(added)})")
    run.expect("the added worker got partitions", joined, f"log {pipeline.logs[added.pid]}")
    await run.at(0.55)
    busy = {partition_of(e, run.spec.partitions) for e in run.events}
    owners = [w for w in first if set(pipeline.assignment(w) or ()) & busy and w.poll() is None]
    leaving = owners[0] if owners else first[0]
    parts = pipeline.assignment(leaving)
    rc = await run.stop_worker(leaving, signal.SIGTERM)
    run.fault(f"worker {leaving.pid} left the group by SIGTERM (had partitions {parts})")
    run.expect("the leaving worker stopped cleanly", rc == 0, f"exit {rc}")
    deadline = time.monotonic() + 15
    while True:
        owners = [w for w in pipeline.live_workers() if pipeline.assignment(w)]
        if len(owners) == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    by_worker = {w.pid: pipeline.assignment(w) for w in owners}
    run.expect("the others took over", len(owners) == 3, f"partitions by worker {by_worker}")


async def kafka_kill9(run: Run) -> None:
    """Kill -9 the broker while the API takes traffic; restart it a few seconds later. While
    nothing listens on the broker's port, no request may get a 202."""
    port = int(run.settings.bootstrap_servers[0].rpartition(":")[2])
    await run.wait_sold(0.3, timeout_s=20)
    await run.stack("kill9", "kafka")
    down = time.monotonic()
    run.fault("kill -9 kafka")
    await asyncio.sleep(1.5)
    ready = await run.api.ready()
    run.expect("/ready says Kafka is down", ready.get("kafka") == "down", f"ready {ready}")
    await asyncio.sleep(2.0)
    listening: list[float] = []
    watcher = asyncio.create_task(_wait_listening(port, listening))
    try:
        await run.stack("start", "kafka")
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    up = listening[0] if listening else time.monotonic()
    run.fault(
        f"kafka restarted (nothing listened for {up - down:.1f}s, ready after "
        f"{time.monotonic() - down:.1f}s)"
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
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        when.append(time.monotonic())
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def redis_wipe(run: Run) -> None:
    """Restart Redis with its data gone mid-sale (the stack's Redis keeps nothing on disk)."""
    await run.wait_sold(0.35, timeout_s=20)
    prefix = run.settings.redis_prefix
    counter = f"{prefix}:{{ev:{next(iter(run.events))}}}:avail"
    client = open_redis(run.settings)
    try:
        before = await client.get(counter)
        # Keys that nothing writes again once gone: cached decisions, idempotency keys.
        # (The event's gate keys are rebuilt at once; they are not evidence.)
        probes = [
            k async for k in client.scan_iter(match=f"{prefix}:*", count=1000) if "{ev:" not in k
        ][:50]
        sold_before = await run.sold()
        await run.stack("kill9", "redis")
        run.fault(f"kill -9 redis (counter was {before!r}, sold {sold_before})")
        await asyncio.sleep(1.0)
        await run.stack("start", "redis")
        run.fault("redis restarted empty")
    finally:
        await client.aclose()
    client = open_redis(run.settings)
    try:
        kept = await client.exists(*probes) if probes else 0
    finally:
        await client.aclose()
    run.expect(
        "Redis came back without its data",
        before is not None and len(probes) > 0 and kept == 0,
        f"counter before {before!r}; of {len(probes)} cached decisions and keys, {kept} "
        "survived the restart",
    )
    await run.at(0.8)
    logs = "".join(run.pipeline.log_of(w) for w in run.pipeline.workers)
    rebuilt = re.findall(r"rebuilt inventory counter of event \d+: available=(-?\d+)", logs)
    run.expect(
        "the worker rebuilt the counter from PostgreSQL",
        bool(rebuilt)
        and all(0 <= int(a) <= sum(run.events.values()) - (sold_before or 0) for a in rebuilt),
        f"rebuilt with available={rebuilt} (sold before the wipe {sold_before})",
    )


async def postgres_restart(run: Run) -> None:
    """Stop PostgreSQL for 3 s mid-sale, later kill -9 it; the worker retries with backoff."""
    await run.wait_sold(0.25, timeout_s=20)
    await run.stack("stop", "postgres")
    run.fault("postgres stopped")
    await asyncio.sleep(3.0)
    await run.stack("start", "postgres")
    run.fault("postgres started")
    await run.wait_sold(0.55, timeout_s=20)
    await run.stack("kill9", "postgres")
    run.fault("kill -9 postgres")
    await asyncio.sleep(1.0)
    await run.stack("start", "postgres")
    run.fault("postgres started (crash recovery)")
    logs = "".join(run.pipeline.log_of(w) for w in run.pipeline.workers)
    # The worker's pool reconnects with backoff while the batch waits for a connection; past
    # the pool's timeout the batch itself is retried with backoff.
    reconnects, retries = logs.count("error connecting"), logs.count("retrying in")
    run.expect(
        "the worker waited out the outages, reconnecting with backoff",
        reconnects + retries > 0,
        f"{reconnects} reconnection attempts and {retries} batch retries logged",
    )


async def duplicates(run: Run) -> None:
    """Raw copies of published booking messages go to the topic again (in the same batch,
    while a worker is dead, and after they were decided); buyers lose answers and retry with
    the same Idempotency-Key, and replay accepted requests."""
    s = run.settings
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    await producer.start()
    copies = 0
    try:

        async def duplicate(share: float, label: str) -> None:
            nonlocal copies
            records = await read_records(s, s.topic)
            chosen = [r for r in records if run.rng.random() < share]
            for r in chosen:
                await producer.send(s.topic, value=r.value, key=r.key, partition=r.partition)
            await producer.flush()
            copies += len(chosen)
            run.fault(f"{len(chosen)} raw duplicate messages produced ({label})")

        await run.at(0.2)
        await duplicate(1.0, "every message so far, while the worker runs")
        victim = run.pipeline.live_workers()[0]
        await run.stop_worker(victim, signal.SIGKILL)
        run.fault(f"kill -9 worker {victim.pid}")
        await duplicate(0.5, "while no worker runs")
        run.start_worker()
        await run.at(0.85)
        await duplicate(0.3, "during the rush")
        await run.traffic.done.wait()
        await duplicate(1.0, "after the sale: every message again")
    finally:
        await producer.stop()
    # Raw ids: a copy appended after its request's deadline is still a copy on the topic
    # (the worker drops it as expired; read_topic would hide it).
    records = [str(decode_request(r.value).booking_id) for r in await read_records(s, s.topic)]
    unique = set(records)
    run.expect(
        "duplicates reached the topic",
        len(records) - len(unique) >= copies > 0,
        f"{len(records)} messages for {len(unique)} bookings ({copies} copies produced)",
    )
    lost = sum(1 for o in run.traffic.outcomes for a in o.attempts[:1] if a.status == "transport")
    run.note(f"{lost} first answers lost on purpose, then retried with the same key")


async def worker_sigterm(run: Run, rounds: int = 3, grace_s: float = 20.0) -> None:
    """SIGTERM a worker mid-batch (while it holds stock in Redis it has not settled), three
    times; then once while PostgreSQL is down under its batch. Each time it must exit cleanly
    within the stack's grace period (20 s, after which `scripts/stack stop` and
    Pipeline.terminate send SIGKILL), settle what it held, and have committed offsets only
    for what PostgreSQL committed."""
    pipeline = run.pipeline
    await run.wait_accepted(20, timeout_s=15)
    for n in range(rounds):
        worker = run.start_worker()
        await pipeline.wait_assigned(worker, timeout_s=20)
        caught = await run.wait_mid_batch(timeout_s=15)
        rc = await run.stop_worker(worker, signal.SIGTERM, timeout_s=grace_s)
        held = sum((await run.held()).values())
        where = f"mid-batch, {caught[1]} tickets held" if caught else "no batch in hand seen"
        run.fault(f"SIGTERM worker {worker.pid} ({where}; {await run.decided()} decided)")
        log = pipeline.log_of(worker)
        run.expect(
            f"SIGTERM #{n + 1} mid-batch: the batch is finished and settled, clean exit",
            caught is not None
            and rc == 0
            and held == 0
            and "finishing the batch in hand" in log
            and "worker stopped after" in log,
            f"{where}; exit {rc}; still held after the exit {held}",
        )
        await run.check_offsets(f"after SIGTERM #{n + 1}")
        await asyncio.sleep(run.rng.uniform(0.3, 1.0))

    worker = run.start_worker()
    await pipeline.wait_assigned(worker, timeout_s=20)
    await run.stack("stop", "postgres")
    run.fault("postgres stopped")
    try:
        # Requests keep being accepted (Kafka and Redis are up): the worker fetches them and
        # its batch cannot reach PostgreSQL.
        await run.wait_accepted(len(run.traffic.accepted) + 3, timeout_s=10)
        await asyncio.sleep(1.0)
        signalled = time.monotonic()
        rc = await run.stop_worker(worker, signal.SIGTERM, timeout_s=grace_s)
        took = time.monotonic() - signalled
        if rc is None:
            # Where is it stuck? The worker logs every task's stack on SIGUSR1.
            worker.send_signal(signal.SIGUSR1)
            await asyncio.sleep(0.5)
            worker.kill()
            await pipeline.wait_exit(worker, 10)
        run.fault(
            f"SIGTERM worker {worker.pid} with its batch stuck on PostgreSQL "
            f"(exit {rc} after {took:.1f}s)"
        )
        log = pipeline.log_of(worker)
        run.expect(
            "SIGTERM during a PostgreSQL outage: batch abandoned, clean exit within the grace",
            rc == 0 and "worker stopped after" in log,
            f"exit {rc} {took:.1f}s after SIGTERM (grace {grace_s:.0f}s); "
            f"log {pipeline.logs[worker.pid]}",
        )
        offsets = await read_offsets(run.settings)
    finally:
        await run.stack("start", "postgres")
        run.fault("postgres started")
    below = {b for b in offsets.below_committed() if b is not None}
    decided_below = len(await decided_ids(run.settings, below))
    run.expect(
        "offsets committed only for decided bookings (abandoned batch)",
        decided_below == len(below),
        f"{len(below)} below the committed offsets, {decided_below} decided",
    )
    run.start_worker()


SCENARIOS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec(
            "worker_kill9",
            "worker kill -9 at random moments, 12 times",
            kill9_workers,
            events=2,
            workers=2,
            partitions=2,
            duration_s=40,
        ),
        Spec(
            "fault_points",
            "worker dies after the reservation, then after the DB commit",
            fault_points,
            start_workers=False,
            duration_s=28,
        ),
        Spec(
            "rebalance",
            "3 workers, one joins and one leaves mid-sale",
            rebalance,
            events=3,
            workers=3,
            partitions=6,
            duration_s=20,
        ),
        Spec(
            "kafka_kill9",
            "Kafka broker kill -9 and restart under traffic",
            kafka_kill9,
            duration_s=25,
        ),
        Spec(
            "redis_wipe", "Redis restarted with its data gone mid-sale", redis_wipe, duration_s=18
        ),
        Spec(
            "postgres_restart",
            "PostgreSQL stopped, then killed, mid-sale",
            postgres_restart,
            duration_s=20,
        ),
        Spec(
            "duplicates",
            "duplicate deliveries, lost answers and replayed keys",
            duplicates,
            duration_s=25,
            flaky_share=0.25,
            replay_share=0.3,
        ),
        Spec(
            "worker_sigterm",
            "SIGTERM mid-batch, and during a PostgreSQL outage",
            worker_sigterm,
            start_workers=False,
            duration_s=25,
        ),
    )
}


# ------------------------------------------------------------------------------- CLI


async def main_async(args: argparse.Namespace) -> int:
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    base = Settings.from_env()
    root = Path(args.log_dir or tempfile.mkdtemp(prefix="chaos-"))
    results: list[ScenarioResult] = []
    for name in names:
        result = await run_scenario(
            name,
            base,
            capacity=args.capacity,
            demand_factor=args.demand_factor,
            log_dir=root / name,
            seed=args.seed,
            keep=args.keep,
        )
        results.append(result)
        print(result.report(), file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        payload = [{**asdict(r), "verdict": r.verdict, "ok": r.ok} for r in results]
        _write(Path(args.json), json.dumps(payload, indent=2, default=str))
    return 0 if all(r.ok for r in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.chaos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY, help="seats per event")
    parser.add_argument(
        "--demand-factor",
        type=float,
        default=DEFAULT_DEMAND_FACTOR,
        help="tickets asked per seat (at least 3 for the undersell check to bite)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--log-dir", help="where process logs go (default: a temp dir)")
    parser.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep a failed scenario's database")
    args = parser.parse_args()
    if os.environ.get("TICKETS_DATABASE_URL") is None:
        print('chaos: TICKETS_* not set; run eval "$(scripts/stack env)" first', file=sys.stderr)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
