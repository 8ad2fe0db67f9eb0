"""Finding a booking's messages in Kafka by its id. The ledger does not record partitions or
offsets, but a booking id is a UUIDv7 (when the API made it) and the booking topic is stamped
with the broker's append time: the search asks Kafka for the offsets at the times the id and
the ledger give and reads forward a little, in the event's partition when the event is known.

Every search is bounded: windows that overlap are merged and at most `Bounds.windows` kept,
at most `Bounds.per_partition` messages are read per partition and window and
`Bounds.total` in all, and only the messages that name the booking are kept in memory. The
answer says which bound it hit (then it may have missed a message)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.config import Settings
from shared.contracts import partition_of
from shared.kafka_view import KafkaLook, Message, decode, describe_one, holding, iso, read_records

# The broker stamps each booking request with its append time (LogAppendTime), at most the
# API's produce timeout after the id's own time (UUIDv7), give or take the hosts' clocks.
CLOCK_SKEW_MS = 5_000

Window = tuple[int, int]  # ms since the epoch, [from, to]


class Bounds(msgspec.Struct, frozen=True):
    """How much one search may read, even inside a burst of thousands of requests a second."""

    per_partition: int = 50_000  # messages per partition and window
    total: int = 200_000  # messages over every window and partition
    windows: int = 8  # after merging: the id's own and the latest ones


class Search(msgspec.Struct, frozen=True):
    """Where a search looked: partitions, time windows and how many messages it read."""

    booking_id: str
    topic: str
    partitions: list[int]
    windows: list[tuple[str, str]]  # ISO 8601 [from, to] of the broker's timestamps
    scanned: int
    bound_per_partition: int
    bound_total: int
    bounds_hit: list[str]  # "windows", "per_partition", "total": it may have missed some
    messages: list[Message]


def id_time_ms(booking_id: uuid.UUID) -> int | None:
    """When the API made the id (its first 48 bits for a UUIDv7), None for another kind."""
    return booking_id.int >> 80 if booking_id.version == 7 else None


def window_around(moment_ms: int, settings: Settings) -> Window:
    """Append times a command published at `moment_ms` (the API's clock) can have."""
    return (
        moment_ms - CLOCK_SKEW_MS,
        moment_ms + int(settings.produce_timeout_s * 1000) + CLOCK_SKEW_MS,
    )


def merge_windows(windows: Iterable[Window], most: int) -> tuple[list[Window], int]:
    """Overlapping windows merged, in time order; beyond `most`, the first (the booking's
    own request) and the latest are kept. Also how many were left out."""
    merged: list[Window] = []
    for begin, end in sorted(windows):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    if len(merged) <= most:
        return merged, 0
    kept = merged[:1] + merged[len(merged) - most + 1 :] if most > 1 else merged[:1]
    return kept, len(merged) - len(kept)


async def find_booking(
    look: KafkaLook,
    booking_id: uuid.UUID,
    windows: Iterable[Window],
    event_id: int | None,
    topic: str,
    bounds: Bounds | None = None,
) -> Search:
    """The messages on `topic` that name the booking, among those appended within the
    windows, in the event's partition when the event is known (the key is the event id), else
    in every one; within `bounds` (the defaults without)."""
    bounds = bounds or Bounds()
    spans, left_out = merge_windows(windows, bounds.windows)
    hit = {"windows"} if left_out else set()
    keep = holding(str(booking_id).encode())
    found: dict[tuple[int, int], Message] = {}
    scanned = 0
    async with look.reading, look.clients() as (admin, consumer):
        partitions = sorted(await describe_one(admin, topic))
        if event_id is not None:
            partitions = [partition_of(event_id, partitions)]
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        for begin_ms, end_ms in spans:
            budget = bounds.total - scanned
            if budget < len(tps):
                hit.add("total")
                break
            per_partition = min(bounds.per_partition, budget // len(tps))
            starts = await _offsets_at(consumer, tps, begin_ms, ends)
            limits = {tp: min(ends[tp], starts[tp] + per_partition) for tp in tps}
            read = await read_records(consumer, starts, limits, keep=keep, stop=_after(end_ms))
            scanned += read.scanned
            if any(limits[tp] < ends[tp] and tp not in read.stopped for tp in tps):
                hit.add("per_partition" if per_partition == bounds.per_partition else "total")
            for record in read.kept:
                found[(record.partition, record.offset)] = decode(topic, look.settings, record)
    return Search(
        str(booking_id),
        topic,
        partitions,
        [(iso(b), iso(e)) for b, e in spans],
        scanned,
        bounds.per_partition,
        bounds.total,
        sorted(hit),
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
