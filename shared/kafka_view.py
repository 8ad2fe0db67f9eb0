"""Looking inside Kafka without a UI: topics with their offsets and replicas, a consumer
group's members and lag, the last messages of a topic decoded, and a booking's messages found
by its id. `python -m scripts.inspect` prints these; the console's API answers them as JSON.

Every call opens its own admin client and a group-less reader (it never commits) and closes
them: an operator's look, not a hot path. Kafka failures surface as KafkaError, OSError or
TimeoutError (shared/failures.py maps them to 503); a topic that does not exist as
TopicMissing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from shared.config import Settings
from shared.contracts import (
    BookingRequested,
    CancelRequested,
    PaymentReceived,
    decode_booking_event,
    decode_command,
    partition_of,
)
from shared.errors import NotFound

CONNECT_TIMEOUT_S = 10.0
FETCH_TIMEOUT_S = 15.0
RAW_PREVIEW_BYTES = 200


class TopicMissing(NotFound):
    """The topic does not exist on the broker."""


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


@contextlib.asynccontextmanager
async def _admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT_S)
        yield admin
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _reader(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer outside any group: it reads, it never commits."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    try:
        await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT_S)
        yield consumer
    finally:
        await consumer.stop()


async def _describe(
    admin: AIOKafkaAdminClient, topics: list[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """Each topic's partitions as the broker describes them (leader, replicas, isr);
    TopicMissing if one does not exist."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for described in await admin.describe_topics(topics):
        if described["error_code"] != 0 or not described["partitions"]:
            raise TopicMissing(f"topic {described['topic']} does not exist")
        found[described["topic"]] = {p["partition"]: p for p in described["partitions"]}
    return found


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


async def list_topics(settings: Settings, names: list[str] | None = None) -> list[TopicInfo]:
    """Offsets and replicas of the given topics, or of every non-internal topic when `names`
    is None."""
    async with _admin(settings) as admin, _reader(settings) as consumer:
        if names is None:
            names = sorted(n for n in await admin.list_topics() if not n.startswith("__"))
        described = await _describe(admin, names)
        tps = [TopicPartition(t, p) for t in names for p in described[t]]
        offsets = await _offsets(consumer, tps)
    return [_topic_info(name, described[name], offsets) for name in names]


async def describe_group(settings: Settings, group: str, topic: str) -> GroupInfo:
    """The group's state, members and lag on `topic` (committed offset vs latest offset)."""
    async with _admin(settings) as admin, _reader(settings) as consumer:
        partitions = sorted((await _describe(admin, [topic]))[topic])
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
        lags.append(PartitionLag(tp.partition, offset, latest, latest - (offset or earliest)))
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
    settings: Settings, topic: str, count: int, containing: bytes | None = None
) -> tuple[TopicInfo, list[Message]]:
    """The last `count` messages of the topic across its partitions, oldest first; with
    `containing`, only those among the last `count` of each partition whose value holds it."""
    async with _admin(settings) as admin, _reader(settings) as consumer:
        described = (await _describe(admin, [topic]))[topic]
        tps = [TopicPartition(topic, p) for p in sorted(described)]
        offsets = await _offsets(consumer, tps)
        starts = {tp: max(first, last - count) for tp, (first, last) in offsets.items()}
        ends = {tp: last for tp, (_, last) in offsets.items()}
        records = await _read(consumer, starts, ends)
    if containing is not None:
        records = [r for r in records if r.value is not None and containing in r.value]
    messages = [decode(topic, settings, r) for r in records]
    messages.sort(key=lambda m: (m.timestamp_ms, m.partition, m.offset))
    return _topic_info(topic, described, offsets), messages[-count:]


async def _read(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    stop: Callable[[ConsumerRecord[bytes, bytes]], bool] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record from `starts` up to `ends` (exclusive) per partition; a partition stops
    early at the first record `stop` accepts (that record is left out)."""
    remaining = {tp: end for tp, end in ends.items() if end > starts[tp]}
    if not remaining:
        return []
    consumer.assign(list(remaining))
    for tp in remaining:
        consumer.seek(tp, starts[tp])
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = asyncio.get_running_loop().time() + FETCH_TIMEOUT_S
    while remaining:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"could not read {sorted(tp.partition for tp in remaining)}")
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, got in batch.items():
            for record in got:
                if tp not in remaining:
                    break
                if record.offset >= remaining[tp] or (stop is not None and stop(record)):
                    del remaining[tp]
                    break
                records.append(record)
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
    return records


# ----------------------------------------------------------------------- finding a booking

# The broker stamps each booking request with its append time (LogAppendTime), at most the
# API's produce timeout after the id's own time (UUIDv7), give or take the hosts' clocks.
CLOCK_SKEW_MS = 5_000
# At most this many messages are read per partition and time window: a search is bounded
# even inside a burst of thousands of requests a second.
SEARCH_MAX_PER_PARTITION = 50_000


def id_time_ms(booking_id: uuid.UUID) -> int | None:
    """When the API made the id (its first 48 bits for a UUIDv7), None for another kind."""
    return booking_id.int >> 80 if booking_id.version == 7 else None


class Search(msgspec.Struct, frozen=True):
    """Where a search looked: partitions, time windows and how many messages it read."""

    booking_id: str
    topic: str
    partitions: list[int]
    windows: list[tuple[str, str]]  # ISO 8601 [from, to] of the broker's timestamps
    scanned: int
    bound_per_partition: int
    messages: list[Message]


def window_around(moment_ms: int, settings: Settings) -> tuple[int, int]:
    """Append times a command published at `moment_ms` (the API's clock) can have."""
    return (
        moment_ms - CLOCK_SKEW_MS,
        moment_ms + int(settings.produce_timeout_s * 1000) + CLOCK_SKEW_MS,
    )


async def find_booking(
    settings: Settings,
    booking_id: uuid.UUID,
    windows: Iterable[tuple[int, int]],
    event_id: int | None,
    topic: str,
) -> Search:
    """The messages on `topic` that name the booking, among those appended within each
    window (ms since the epoch), in the event's partition when the event is known (the key is
    the event id), else in every one; at most SEARCH_MAX_PER_PARTITION read per window."""
    text = str(booking_id).encode()
    spans = sorted(set(windows))
    found: dict[tuple[int, int], Message] = {}
    scanned = 0
    async with _admin(settings) as admin, _reader(settings) as consumer:
        described = (await _describe(admin, [topic]))[topic]
        partitions = sorted(described)
        if event_id is not None:
            partitions = [partition_of(event_id, partitions)]
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        for begin_ms, end_ms in spans:
            starts = await _offsets_at(consumer, tps, begin_ms, ends)
            limits = {tp: min(ends[tp], starts[tp] + SEARCH_MAX_PER_PARTITION) for tp in tps}
            records = await _read(consumer, starts, limits, stop=_after(end_ms))
            scanned += len(records)
            for record in records:
                if record.value is not None and text in record.value:
                    found[(record.partition, record.offset)] = decode(topic, settings, record)
    return Search(
        str(booking_id),
        topic,
        partitions,
        [(iso(b), iso(e)) for b, e in spans],
        scanned,
        SEARCH_MAX_PER_PARTITION,
        sorted(found.values(), key=lambda m: (m.timestamp_ms, m.partition, m.offset)),
    )


def _after(end_ms: int) -> Callable[[ConsumerRecord[bytes, bytes]], bool]:
    """Stops a partition's read at its first record appended after `end_ms` (append times
    rise along a partition)."""

    def stop(record: ConsumerRecord[bytes, bytes]) -> bool:
        return bool(record.timestamp > end_ms)

    return stop


async def _offsets_at(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    at_ms: int,
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """The first offset of each partition appended at or after `at_ms` (its end if none)."""
    answer = await consumer.offsets_for_times(dict.fromkeys(tps, max(at_ms, 0)))
    return {tp: ends[tp] if answer[tp] is None else answer[tp].offset for tp in tps}
