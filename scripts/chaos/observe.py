"""What the runner sees from the outside: the scenario's API (as its admin and as a poller),
its ledger by direct SQL, and what its Kafka topics and consumer group hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from psycopg.rows import dict_row

from scripts.waiting import poll_until
from shared.config import Settings
from shared.contracts import BookingRequested, decode_command
from shared.deadlines import appended_after_expiry


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Api:
    """The admin's and the poller's view through the scenario's API."""

    def __init__(self, client: httpx.AsyncClient, admin_token: str) -> None:
        self.http = client
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    async def create_event(
        self, capacity: int, limit: int, name: str, hold_seconds: int = 0
    ) -> int:
        response = await self.http.post(
            "/api/events",
            json={
                "name": name,
                "capacity": capacity,
                "per_user_limit": limit,
                "hold_seconds": hold_seconds,
            },
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
        return json_body(response) if response.status_code == 200 else None

    async def event(self, event_id: int) -> dict[str, Any] | None:
        try:
            response = await self.http.get(f"/api/events/{event_id}")
        except httpx.TransportError:
            return None
        return json_body(response) if response.status_code == 200 else None

    async def booking(self, booking_id: str) -> tuple[int, dict[str, Any]]:
        try:
            # The admin may read any buyer's booking in token mode.
            response = await self.http.get(f"/api/bookings/{booking_id}", headers=self.admin)
        except httpx.TransportError:
            return 0, {}
        return response.status_code, json_body(response)

    async def ready(self) -> dict[str, Any]:
        try:
            response = await self.http.get("/ready")
        except httpx.TransportError:
            return {}
        return json_body(response)


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


async def caught_up(settings: Settings, group: str, topic: str, timeout_s: float) -> str:
    """Wait (bounded) until `group` has committed offsets at the end of every partition of
    `topic` that has records. Returns "" then, else what it saw last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    await admin.start()
    behind = ""
    try:
        # ensure_topics creates the booking and events topics with topic_partitions.
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(tps)

        async def committed_to_end() -> bool:
            nonlocal behind
            committed = await admin.list_consumer_group_offsets(group)
            at = {tp: committed[tp].offset if tp in committed else None for tp in tps}
            behind = ", ".join(
                f"partition {tp.partition}: committed {at[tp]} of {end}"
                for tp, end in ends.items()
                if end > 0 and (at[tp] is None or at[tp] < end)
            )
            return not behind

        await poll_until(committed_to_end, timeout_s, interval_s=0.2)
        return behind
    finally:
        await admin.close()
        await consumer.stop()


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
        # ensure_topics creates the booking and events topics with topic_partitions, the
        # dead-letter topics with one.
        partitioned = (settings.topic, settings.events_topic)
        count = settings.topic_partitions if topic in partitioned else 1
        tps = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[ConsumerRecord[bytes, bytes]] = []

        async def read_to_end() -> bool:
            if not await _behind(consumer, ends):
                return True
            batch = await consumer.getmany(*tps, timeout_ms=500)
            out.extend(r for tp, rs in batch.items() for r in rs if r.offset < ends[tp])
            return False

        # getmany() itself waits for records, so no pause between reads.
        if not await poll_until(read_to_end, timeout_s, interval_s=0):
            raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
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
    """The booking a request record asks for (None: poison, a request answered 503, or
    another command)."""
    try:
        request = decode_command(record.value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if not isinstance(request, BookingRequested) or appended_after_expiry(record, request):
        return None
    return str(request.booking_id)
