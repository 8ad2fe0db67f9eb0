"""Looking inside Kafka without a UI: topics with their offsets and replicas, a consumer
group's members and lag, and the last messages of a topic decoded (a booking's messages are
found by shared/kafka_search.py). `python -m scripts.inspect` prints these; the console's API
answers them as JSON.

A `KafkaLook` holds one admin client and one group-less reader (it never commits): the API
keeps one per process, a tool opens one for its run. Kafka failures surface as KafkaError,
OSError or TimeoutError (shared/failures.py maps them to 503); a topic that does not exist as
TopicMissing (503 too: the project's topics are created at start)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaConnectionError, KafkaError

from shared.config import Settings
from shared.contracts import (
    BookingRequested,
    CancelRequested,
    PaymentReceived,
    decode_booking_event,
    decode_command,
)
from shared.errors import Unavailable

CONNECT_TIMEOUT_S = 10.0
# After a failure every look fails at once for this long, instead of each one waiting for an
# unreachable broker again.
FAILED_FOR_S = 5.0
FETCH_TIMEOUT_S = 15.0
RAW_PREVIEW_BYTES = 200


class TopicMissing(Unavailable):
    """The topic does not exist on the broker."""


def project_topics(settings: Settings) -> list[str]:
    """The topics the project writes: booking commands, their dead letters, booking events,
    and the notifier's dead letters."""
    return [settings.topic, settings.dlq_topic, settings.events_topic, settings.notify_dlq_topic]


# ------------------------------------------------------------------------------ the data


class PartitionOffsets(msgspec.Struct, frozen=True):
    partition: int
    earliest: int  # first offset still on the broker
    latest: int  # the offset the next message will get (high watermark)
    messages: int  # latest - earliest
    leader: int | None = None  # broker ids; None when not asked
    replicas: list[int] = []
    isr: list[int] = []


class TopicInfo(msgspec.Struct, frozen=True):
    name: str
    partitions: list[PartitionOffsets]
    messages: int


class PartitionLag(msgspec.Struct, frozen=True):
    partition: int
    committed: int | None  # None: the group never committed on this partition
    latest: int
    lag: int


class Member(msgspec.Struct, frozen=True):
    client_id: str
    host: str
    partitions: list[int]  # of the inspected topic


class GroupInfo(msgspec.Struct, frozen=True):
    group: str
    topic: str
    state: str  # Kafka's group state (Stable, Empty, ...), or "unknown" if it has none
    members: list[Member]
    partitions: list[PartitionLag]
    lag: int


Kind = Literal["booking", "payment", "cancel", "booking_event", "undecodable"]


class Message(msgspec.Struct, frozen=True):
    """One message as read: decoded when it follows a contract, a raw preview when not."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    kind: Kind
    value: dict[str, Any] | None  # the decoded message, as JSON
    error: str | None  # why it does not decode (poison)
    raw_preview: str | None  # the first bytes of an undecodable value
    headers: dict[str, str]  # dead letters carry `reason` and `source`

    @property
    def booking_id(self) -> str | None:
        return None if self.value is None else self.value.get("booking_id")


def decode(topic: str, settings: Settings, record: ConsumerRecord[bytes, bytes]) -> Message:
    """A record as a Message: booking-events topics hold BookingEvents, every other one the
    worker's commands (dead letters are commands that failed to decode, or to apply)."""
    events = topic in (settings.events_topic, settings.notify_dlq_topic)
    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
    key = None if record.key is None else record.key.decode(errors="replace")
    base = (topic, record.partition, record.offset, record.timestamp, key)
    try:
        decoded: Any = (
            decode_booking_event(record.value) if events else decode_command(record.value)
        )
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Message(*base, "undecodable", None, str(exc), preview(record.value), headers)
    return Message(*base, _kind(decoded), msgspec.to_builtins(decoded), None, None, headers)


def _kind(decoded: object) -> Kind:
    if isinstance(decoded, BookingRequested):
        return "booking"
    if isinstance(decoded, PaymentReceived):
        return "payment"
    if isinstance(decoded, CancelRequested):
        return "cancel"
    return "booking_event"


def preview(raw: bytes | None) -> str:
    if raw is None:
        return "None"
    suffix = f"... ({len(raw)} bytes)" if len(raw) > RAW_PREVIEW_BYTES else ""
    return repr(raw[:RAW_PREVIEW_BYTES]) + suffix


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


# ----------------------------------------------------------------------------- reading Kafka

Clients = tuple[AIOKafkaAdminClient, AIOKafkaConsumer]
Record: TypeAlias = ConsumerRecord[bytes, bytes]
_FAILURES = (KafkaError, OSError, TimeoutError)


class KafkaLook:
    """An admin client and a group-less reader, opened on first use and kept until a failure
    drops them (the next look reconnects). `reading` serialises reads: the reader's
    assignment is one at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reading = asyncio.Lock()
        self._opening = asyncio.Lock()
        self._clients: Clients | None = None
        self._failed: tuple[float, str] | None = None  # monotonic time, what failed

    @contextlib.asynccontextmanager
    async def clients(self) -> AsyncIterator[Clients]:
        clients = await self._open()
        try:
            yield clients
        except _FAILURES as exc:
            await self._drop(clients, exc)
            raise

    async def _open(self) -> Clients:
        async with self._opening:
            if self._failed is not None and time.monotonic() - self._failed[0] < FAILED_FOR_S:
                raise KafkaConnectionError(
                    f"Kafka failed less than {FAILED_FOR_S:.0f} s ago: {self._failed[1]}"
                )
            if self._clients is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
                reader = AIOKafkaConsumer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    group_id=None,
                    enable_auto_commit=False,
                )
                try:
                    await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
                    await asyncio.wait_for(reader.start(), CONNECT_TIMEOUT_S)
                except _FAILURES as exc:
                    self._failed = (time.monotonic(), repr(exc))
                    await _close((admin, reader))
                    raise
                self._clients = (admin, reader)
            self._failed = None
            return self._clients

    async def _drop(self, clients: Clients, exc: BaseException) -> None:
        self._failed = (time.monotonic(), repr(exc))
        if self._clients is clients:
            self._clients = None
            await _close(clients)

    async def close(self) -> None:
        if self._clients is not None:
            clients, self._clients = self._clients, None
            await _close(clients)


async def _close(clients: Clients) -> None:
    admin, reader = clients
    with contextlib.suppress(*_FAILURES):
        await admin.close()
    with contextlib.suppress(*_FAILURES):
        await reader.stop()


@contextlib.asynccontextmanager
async def looking(settings: Settings) -> AsyncIterator[KafkaLook]:
    """A look for one run of a tool, closed at its end."""
    look = KafkaLook(settings)
    try:
        yield look
    finally:
        await look.close()


async def describe(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """Each topic's partitions as the broker describes them (leader, replicas, isr); a topic
    that does not exist is left out."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for described in await admin.describe_topics(topics):
        if described["error_code"] == 0 and described["partitions"]:
            found[described["topic"]] = {p["partition"]: p for p in described["partitions"]}
    return found


async def describe_one(admin: AIOKafkaAdminClient, topic: str) -> dict[int, dict[str, Any]]:
    """`describe` of one topic; TopicMissing if it does not exist."""
    found = await describe(admin, [topic])
    if topic not in found:
        raise TopicMissing(f"topic {topic} does not exist")
    return found[topic]


async def _offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """(earliest, latest) offset of each partition."""
    earliest = await consumer.beginning_offsets(tps)
    latest = await consumer.end_offsets(tps)
    return {tp: (earliest[tp], latest[tp]) for tp in tps}


def _topic_info(
    name: str, described: dict[int, dict[str, Any]], offsets: dict[TopicPartition, tuple[int, int]]
) -> TopicInfo:
    partitions = []
    for number in sorted(described):
        earliest, latest = offsets[TopicPartition(name, number)]
        meta = described[number]
        leader = meta.get("leader")
        partitions.append(
            PartitionOffsets(
                number,
                earliest,
                latest,
                latest - earliest,
                leader if isinstance(leader, int) and leader >= 0 else None,
                sorted(meta.get("replicas") or []),
                sorted(meta.get("isr") or []),
            )
        )
    return TopicInfo(name, partitions, sum(p.messages for p in partitions))


async def list_topics(
    look: KafkaLook, names: list[str] | None = None, skip_missing: bool = False
) -> list[TopicInfo]:
    """Offsets and replicas of the given topics, or of every non-internal topic when `names`
    is None. A topic that does not exist is TopicMissing, or left out with `skip_missing`."""
    async with look.clients() as (admin, consumer):
        if names is None:
            names = sorted(n for n in await admin.list_topics() if not n.startswith("__"))
        described = await describe(admin, names)
        missing = [n for n in names if n not in described]
        if missing and not skip_missing:
            raise TopicMissing(f"topic {missing[0]} does not exist")
        names = [n for n in names if n in described]
        tps = [TopicPartition(t, p) for t in names for p in described[t]]
        offsets = await _offsets(consumer, tps)
    return [_topic_info(name, described[name], offsets) for name in names]


async def describe_group(look: KafkaLook, group: str, topic: str) -> GroupInfo:
    """The group's state, members and lag on `topic` (committed offset vs latest offset)."""
    async with look.clients() as (admin, consumer):
        partitions = sorted(await describe_one(admin, topic))
        tps = [TopicPartition(topic, p) for p in partitions]
        offsets = await _offsets(consumer, tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        known = {g[0] for g in await admin.list_consumer_groups()}
        state = "unknown"
        members: list[Member] = []
        # Describing a group the broker does not know makes aiokafka 0.14 fail to decode the
        # answer, so only known groups are described.
        if group in known:
            state, members = await _group_members(admin, group, topic)
    lags = []
    for tp in tps:
        earliest, latest = offsets[tp]
        meta = committed.get(tp)
        offset = meta.offset if meta is not None and meta.offset >= 0 else None
        # Without a commit the worker starts at the earliest offset (auto_offset_reset).
        start = earliest if offset is None else offset
        lags.append(PartitionLag(tp.partition, offset, latest, latest - start))
    return GroupInfo(group, topic, state, members, lags, sum(p.lag for p in lags))


async def _group_members(
    admin: AIOKafkaAdminClient, group: str, topic: str
) -> tuple[str, list[Member]]:
    response = (await admin.describe_consumer_groups([group]))[0]
    _error, _group, state, _protocol_type, _protocol, raw_members = response.groups[0]
    members = []
    for _member_id, client_id, host, _metadata, raw_assignment in raw_members:
        assigned: list[int] = []
        if raw_assignment:
            assignment = ConsumerProtocolMemberAssignment.decode(raw_assignment)
            assigned = sorted(tp.partition for tp in assignment.partitions() if tp.topic == topic)
        members.append(Member(client_id, host, assigned))
    return state, members


async def tail(
    look: KafkaLook, topic: str, count: int, containing: bytes | None = None
) -> tuple[TopicInfo, list[Message]]:
    """The last `count` messages of the topic across its partitions, oldest first; with
    `containing`, only those among the last `count` of each partition whose value holds it."""
    keep = None if containing is None else holding(containing)
    async with look.reading, look.clients() as (admin, consumer):
        described = await describe_one(admin, topic)
        tps = [TopicPartition(topic, p) for p in sorted(described)]
        offsets = await _offsets(consumer, tps)
        starts = {tp: max(first, last - count) for tp, (first, last) in offsets.items()}
        ends = {tp: last for tp, (_, last) in offsets.items()}
        read = await read_records(consumer, starts, ends, keep=keep)
    messages = [decode(topic, look.settings, r) for r in read.kept]
    messages.sort(key=lambda m: (m.timestamp_ms, m.partition, m.offset))
    return _topic_info(topic, described, offsets), messages[-count:]


def holding(text: bytes) -> Callable[[Record], bool]:
    """Keeps the records whose value holds `text`."""

    def keep(record: Record) -> bool:
        return record.value is not None and text in record.value

    return keep


class Read(msgspec.Struct):
    kept: list[Record]
    scanned: int  # records read, kept or not
    stopped: set[TopicPartition]  # partitions whose read ended at a record `stop` accepted


async def read_records(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    keep: Callable[[Record], bool] | None = None,
    stop: Callable[[Record], bool] | None = None,
) -> Read:
    """The records from `starts` up to `ends` (exclusive) per partition that `keep` accepts
    (all without it: only those are held in memory); a partition stops early at the first
    record `stop` accepts (that record is left out). The caller holds `KafkaLook.reading`."""
    read = Read([], 0, set())
    remaining = {tp: end for tp, end in ends.items() if end > starts[tp]}
    if not remaining:
        return read
    consumer.assign(list(remaining))
    for tp in remaining:
        consumer.seek(tp, starts[tp])
    deadline = asyncio.get_running_loop().time() + FETCH_TIMEOUT_S
    while remaining:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"could not read {sorted(tp.partition for tp in remaining)}")
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, got in batch.items():
            for record in got:
                if tp not in remaining:
                    break
                if record.offset >= remaining[tp]:
                    del remaining[tp]
                    break
                if stop is not None and stop(record):
                    del remaining[tp]
                    read.stopped.add(tp)
                    break
                read.scanned += 1
                if keep is None or keep(record):
                    read.kept.append(record)
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
    return read
