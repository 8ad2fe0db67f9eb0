"""Look inside Kafka without a UI: the project's topics and their offsets, the worker group's
lag, and the last messages of a topic, decoded.

    python -m scripts.inspect topics [--topic T] [--all]
    python -m scripts.inspect group [--group G] [--topic T]
    python -m scripts.inspect tail [--topic T | --dlq] [-n N]

Topics, group and broker come from the TICKETS_* settings (`eval "$(scripts/stack env)"`).
Booking requests are decoded with the same contract the worker uses; a message that does not
decode (poison) is shown as its raw bytes. Dead letters are shown with their `reason` header.

Exit status: 0 done, 1 the topic does not exist, 2 bad usage, 3 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

from shared.config import Settings, load_or_exit
from shared.contracts import CancelRequested, PaymentReceived, decode_command

EXIT_OK, EXIT_NO_TOPIC, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
CONNECT_TIMEOUT_S = 15.0
FETCH_TIMEOUT_S = 15.0
RAW_PREVIEW_BYTES = 200


class TopicMissing(Exception):
    """The topic does not exist on the broker."""


# ------------------------------------------------------------------------------ the data


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    earliest: int  # first offset still on the broker
    latest: int  # the offset the next message will get (high watermark)

    @property
    def messages(self) -> int:
        return self.latest - self.earliest


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: list[PartitionOffsets]

    @property
    def messages(self) -> int:
        return sum(p.messages for p in self.partitions)


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed on this partition
    latest: int
    lag: int


@dataclass(frozen=True)
class Member:
    client_id: str
    host: str
    partitions: list[int]  # of the inspected topic


@dataclass(frozen=True)
class GroupInfo:
    group: str
    topic: str
    state: str  # Kafka's group state (Stable, Empty, ...), or "unknown" if it has none
    members: list[Member]
    partitions: list[PartitionLag]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class TailMessage:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """The value as a command, or its raw bytes when it is poison."""
        try:
            command = decode_command(self.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return f"POISON ({exc}) {_preview(self.value)}"
        if isinstance(command, PaymentReceived):
            return (
                f"payment {command.booking_id} event={command.event_id} "
                f"{command.provider}:{command.payment_ref} "
                f"received_at={_iso(command.received_at_ms)}"
            )
        if isinstance(command, CancelRequested):
            return (
                f"cancel {command.booking_id} event={command.event_id} by={command.by!r} "
                f"requested_at={_iso(command.requested_at_ms)}"
            )
        return (
            f"booking {command.booking_id} event={command.event_id} "
            f"user={command.user_id!r} quantity={command.quantity} "
            f"requested_at={_iso(command.requested_at_ms)}"
        )


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


async def _partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, list[int]]:
    """Partition numbers of each topic; TopicMissing if one does not exist."""
    found: dict[str, list[int]] = {}
    for described in await admin.describe_topics(topics):
        if described["error_code"] != 0 or not described["partitions"]:
            raise TopicMissing(described["topic"])
        found[described["topic"]] = sorted(p["partition"] for p in described["partitions"])
    return found


async def _offsets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """(earliest, latest) offset of each partition."""
    earliest = await consumer.beginning_offsets(tps)
    latest = await consumer.end_offsets(tps)
    return {tp: (earliest[tp], latest[tp]) for tp in tps}


async def list_topics(settings: Settings, names: list[str] | None = None) -> list[TopicInfo]:
    """Offsets of the given topics, or of every non-internal topic when `names` is None."""
    async with _admin(settings) as admin, _reader(settings) as consumer:
        if names is None:
            names = sorted(n for n in await admin.list_topics() if not n.startswith("__"))
        partitions = await _partitions(admin, names)
        tps = [TopicPartition(t, p) for t in names for p in partitions[t]]
        offsets = await _offsets(consumer, tps)
    return [
        TopicInfo(
            name,
            [PartitionOffsets(p, *offsets[TopicPartition(name, p)]) for p in partitions[name]],
        )
        for name in names
    ]


async def describe_group(settings: Settings, group: str, topic: str) -> GroupInfo:
    """The group's state, members and lag on `topic` (committed offset vs latest offset)."""
    async with _admin(settings) as admin, _reader(settings) as consumer:
        partitions = (await _partitions(admin, [topic]))[topic]
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
    return GroupInfo(group, topic, state, members, lags)


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


async def tail(settings: Settings, topic: str, count: int) -> tuple[TopicInfo, list[TailMessage]]:
    """The last `count` messages of the topic across its partitions, oldest first."""
    async with _admin(settings) as admin, _reader(settings) as consumer:
        partitions = (await _partitions(admin, [topic]))[topic]
        tps = [TopicPartition(topic, p) for p in partitions]
        offsets = await _offsets(consumer, tps)
        wanted = {tp: offsets[tp] for tp in tps if offsets[tp][1] > offsets[tp][0]}
        messages: list[TailMessage] = []
        if wanted:
            consumer.assign(list(wanted))
            for tp, (earliest, latest) in wanted.items():
                consumer.seek(tp, max(earliest, latest - count))
            messages = await _read_until(
                consumer, {tp: latest for tp, (_, latest) in wanted.items()}
            )
    info = TopicInfo(topic, [PartitionOffsets(tp.partition, *offsets[tp]) for tp in tps])
    messages.sort(key=lambda m: (m.timestamp_ms, m.partition, m.offset))
    return info, messages[-count:]


async def _read_until(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> list[TailMessage]:
    """Everything from the current positions up to `ends` (exclusive)."""
    messages: list[TailMessage] = []
    deadline = asyncio.get_running_loop().time() + FETCH_TIMEOUT_S
    remaining = dict(ends)
    while remaining:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"could not read {sorted(tp.partition for tp in remaining)}")
        batch = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
                    messages.append(
                        TailMessage(
                            tp.partition,
                            record.offset,
                            record.timestamp,
                            record.key,
                            record.value,
                            headers,
                        )
                    )
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
    return messages


# ------------------------------------------------------------------------------ rendering


def render_topics(topics: Sequence[TopicInfo]) -> list[str]:
    lines: list[str] = []
    for topic in topics:
        lines.append(
            f"{topic.name}: {_count(len(topic.partitions), 'partition')}, "
            f"{_count(topic.messages, 'message')}"
        )
        lines.append(f"  {'partition':>9}  {'earliest':>10}  {'latest':>10}  {'messages':>10}")
        for p in topic.partitions:
            lines.append(f"  {p.partition:>9}  {p.earliest:>10}  {p.latest:>10}  {p.messages:>10}")
    return lines


def render_group(info: GroupInfo) -> list[str]:
    lines = [f"group {info.group}: {info.state}, {_count(len(info.members), 'member')}"]
    for member in info.members:
        lines.append(f"  member {member.client_id} ({member.host}): partitions {member.partitions}")
    lines.append(f"topic {info.topic}")
    lines.append(f"  {'partition':>9}  {'committed':>10}  {'latest':>10}  {'lag':>10}")
    for p in info.partitions:
        committed = "-" if p.committed is None else str(p.committed)
        lines.append(f"  {p.partition:>9}  {committed:>10}  {p.latest:>10}  {p.lag:>10}")
    lines.append(f"total lag: {info.lag}")
    return lines


def render_tail(info: TopicInfo, messages: Sequence[TailMessage]) -> list[str]:
    lines = [
        f"{info.name}: last {len(messages)} of {_count(info.messages, 'message')} "
        f"({_count(len(info.partitions), 'partition')})"
    ]
    for m in messages:
        key = "-" if m.key is None else m.key.decode(errors="replace")
        lines.append(
            f"p{m.partition}@{m.offset}  {_iso(m.timestamp_ms)}  key={key}  {m.describe()}"
        )
        for name, value in m.headers.items():
            lines.append(f"    {name}: {value}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _preview(raw: bytes | None) -> str:
    if raw is None:
        return "None"
    suffix = f"... ({len(raw)} bytes)" if len(raw) > RAW_PREVIEW_BYTES else ""
    return repr(raw[:RAW_PREVIEW_BYTES]) + suffix


# ------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.inspect",
        description="Topics, offsets, consumer group lag and the last messages of a topic.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser("topics", help="partitions and offsets of the project's topics")
    topics.add_argument("--topic", help="only this topic (default: booking and dead-letter)")
    topics.add_argument("--all", action="store_true", help="every topic on the broker")
    group = commands.add_parser("group", help="the worker group's members and lag")
    group.add_argument("--group", help="consumer group (default TICKETS_CONSUMER_GROUP)")
    group.add_argument("--topic", help="topic to measure lag on (default TICKETS_TOPIC)")
    last = commands.add_parser("tail", help="the last N messages of a topic, decoded")
    which = last.add_mutually_exclusive_group()
    which.add_argument("--topic", help="topic to read (default TICKETS_TOPIC)")
    which.add_argument("--dlq", action="store_true", help="the dead-letter topic")
    last.add_argument("-n", type=int, default=10, help="how many messages (default 10)")
    return parser


async def _run(args: argparse.Namespace, settings: Settings) -> list[str]:
    if args.command == "topics":
        if args.all:
            names = None
        elif args.topic:
            names = [args.topic]
        else:
            names = [settings.topic, settings.dlq_topic]
        return render_topics(await list_topics(settings, names))
    if args.command == "group":
        group = args.group or settings.consumer_group
        return render_group(await describe_group(settings, group, args.topic or settings.topic))
    topic = settings.dlq_topic if args.dlq else args.topic or settings.topic
    return render_tail(*await tail(settings, topic, args.n))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "tail" and args.n < 1:
        parser.error("-n must be at least 1")
    settings = load_or_exit()
    try:
        lines = asyncio.run(_run(args, settings))
    except TopicMissing as exc:
        print(f"topic {exc} does not exist on {settings.kafka_bootstrap}", file=sys.stderr)
        return EXIT_NO_TOPIC
    except (KafkaError, OSError, TimeoutError) as exc:
        print(f"Kafka at {settings.kafka_bootstrap} is unreachable: {exc!r}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
