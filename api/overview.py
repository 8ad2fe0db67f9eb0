"""The console's overview: every event's live sold/held/free with its audit verdict, and the
service's figures (requests/s, decisions/s, decision latency, worker lag), each read from the
source named in `SOURCES`."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time
import uuid

import msgspec
import redis.exceptions
from aiokafka.errors import KafkaError

from api.coalesce import RecentReads
from api.request_rate import RequestRate
from shared.audit import AuditReport, Verdict, audit_event
from shared.config import Settings
from shared.db import NamedQueries, Pool, fetch_all, fetch_one
from shared.inventory import Inventory
from shared.kafka_view import KafkaLook, PartitionLag, TopicMissing, describe_group

log = logging.getLogger(__name__)

queries = NamedQueries("api", "console.sql")

# A console polls every second or two, maybe from several screens: each figure is read at
# most once per this long per API process, and every poller shares that read.
FRESH_S = 1.0
# Decisions counted among bookings whose ids (their request time) are this much older than
# the window at most (see recent_decisions in console.sql).
LOOKBACK_S = 30.0
AUDITED_MAX = 100  # audits are whole-event queries: the overview bounds how many it runs
# ...and how often and how many at once, so that polling consoles never take more than a
# couple of the API's PostgreSQL connections from the buyers.
AUDIT_FRESH_S = 10.0
AUDITS_AT_ONCE = 2

SOURCES = {
    "events": "PostgreSQL's events rows (capacity, sold, held); free from the Redis gate's "
    "counter when it has one (as GET /api/events/{id}), else capacity - sold - held",
    "verdict": "the audit of GET /api/events/{id}/audit (shared/audit.py), run at most once "
    f"every {AUDIT_FRESH_S:.0f} s per event and {AUDITS_AT_ONCE} at a time per API process",
    "requests_per_s": "the API's own counter tickets_booking_requests_total (POST "
    "/api/bookings, every outcome, every API process), read once a second",
    "decisions_per_s": "the ledger: bookings first decided in the window (decided_at), among "
    f"those requested at most {LOOKBACK_S:.0f} s before it",
    "decision_latency": "the ledger: decided_at - requested_at of those same bookings",
    "worker_lag": "Kafka: the worker group's committed offsets against the booking topic's "
    "end offsets (messages accepted, not yet decided and committed)",
}


class EventRow(msgspec.Struct):
    id: int
    name: str
    capacity: int
    sold: int
    held: int
    free: int
    hold_seconds: int
    queue: bool
    verdict: Verdict | None  # None: the audit could not run (a dependency is down)


class ServiceFigures(msgspec.Struct):
    window_s: float
    requests_per_s: float | None  # None until the API has read its counter twice
    decisions_per_s: float
    decided: int
    decision_latency_p50_s: float | None  # None when nothing was decided in the window
    decision_latency_p99_s: float | None
    worker_lag: int | None  # None when Kafka could not be asked
    lag_partitions: list[PartitionLag]
    unavailable: list[str]  # what could not be read now: "redis", "kafka"


class Overview(msgspec.Struct):
    at: dt.datetime
    events: list[EventRow]
    service: ServiceFigures
    sources: dict[str, str]


class Decided(msgspec.Struct, frozen=True):
    count: int
    p50_s: float | None
    p99_s: float | None


def first_id_since(epoch_ms: int) -> uuid.UUID:
    """The smallest UUIDv7 made at `epoch_ms`: booking ids from then on sort after it."""
    return uuid.UUID(int=(epoch_ms << 80) | (0x7 << 76) | (0x2 << 62))


class OverviewReader:
    """Reads the overview, sharing each read among the pollers of one process."""

    def __init__(
        self,
        settings: Settings,
        pool: Pool,
        inventory: Inventory,
        rate: RequestRate,
        look: KafkaLook,
    ) -> None:
        self._settings = settings
        self._look = look
        self._pool = pool
        self._inventory = inventory
        self._rate = rate
        self._audits = RecentReads(self._audit, AUDIT_FRESH_S)
        self._auditing = asyncio.Semaphore(AUDITS_AT_ONCE)
        self._free = RecentReads(inventory.available, FRESH_S)
        self._decided = RecentReads(self._read_decided, FRESH_S)
        self._lag = RecentReads(self._read_lag, FRESH_S)

    async def read(self, limit: int, window_s: int) -> Overview:
        unavailable: list[str] = []
        events = await self._events(limit, unavailable)
        # PostgreSQL down fails the whole answer (503): the events come from it too.
        decided = await self._decided.get(window_s)
        lag_parts: list[PartitionLag] = []
        lag: int | None = None
        try:
            lag_parts = await self._lag.get(None)
            lag = sum(p.lag for p in lag_parts)
        except (KafkaError, OSError, TimeoutError, TopicMissing) as exc:
            log.warning("overview: worker lag unavailable: %r", exc)
            unavailable.append("kafka")
        service = ServiceFigures(
            window_s=window_s,
            requests_per_s=self._rate.per_s(window_s),
            decisions_per_s=decided.count / window_s,
            decided=decided.count,
            decision_latency_p50_s=decided.p50_s,
            decision_latency_p99_s=decided.p99_s,
            worker_lag=lag,
            lag_partitions=lag_parts,
            unavailable=sorted(set(unavailable)),
        )
        return Overview(dt.datetime.now(dt.UTC), events, service, SOURCES)

    async def _events(self, limit: int, unavailable: list[str]) -> list[EventRow]:
        rows = await fetch_all(self._pool, queries.newest_events, {"limit": limit})
        ids = [r["id"] for r in rows]
        frees, audits = await asyncio.gather(
            asyncio.gather(*(self._free.get(i) for i in ids), return_exceptions=True),
            asyncio.gather(
                *(self._audits.get(i) for i in ids[:AUDITED_MAX]), return_exceptions=True
            ),
        )
        events = []
        for row, gate, audit in itertools.zip_longest(rows, frees, audits[: len(rows)]):
            free = row["capacity"] - row["sold"] - row["held"]
            if isinstance(gate, int):
                free = max(gate, 0)  # what the gate will still admit
            verdict = audit.verdict if isinstance(audit, AuditReport) else None
            for answer in (gate, audit):
                if isinstance(answer, redis.exceptions.RedisError | OSError):
                    unavailable.append("redis")
                elif isinstance(answer, BaseException):
                    raise answer
            events.append(
                EventRow(
                    row["id"],
                    row["name"],
                    row["capacity"],
                    row["sold"],
                    row["held"],
                    free,
                    row["hold_seconds"],
                    row["queue"],
                    verdict,
                )
            )
        return events

    async def _audit(self, event_id: int) -> AuditReport | None:
        async with self._auditing:
            return await audit_event(self._pool, self._inventory, event_id)

    async def _read_decided(self, window_s: int) -> Decided:
        now_ms = int(time.time() * 1000)
        since_ms = now_ms - window_s * 1000
        params = {
            "first_id": first_id_since(since_ms - int(LOOKBACK_S * 1000)),
            "since": dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC),
        }
        row = await fetch_one(self._pool, queries.recent_decisions, params)
        assert row is not None  # an aggregate always answers one row
        return Decided(row["decided"], row["p50_s"], row["p99_s"])

    async def _read_lag(self, _: None) -> list[PartitionLag]:
        s = self._settings
        return (await describe_group(self._look, s.consumer_group, s.topic)).partitions
