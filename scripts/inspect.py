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
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from shared.config import Settings, load_or_exit
from shared.kafka_view import (
    GroupInfo,
    KafkaLook,
    Message,
    TopicInfo,
    TopicMissing,
    describe_group,
    iso,
    list_topics,
    looking,
    tail,
)

EXIT_OK, EXIT_NO_TOPIC, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


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


def describe(message: Message) -> str:
    """The value as a command, or its raw bytes when it is poison."""
    v = message.value
    if v is None:
        return f"POISON ({message.error}) {message.raw_preview}"
    if message.kind == "payment":
        return (
            f"payment {v['booking_id']} event={v['event_id']} "
            f"{v['provider']}:{v['payment_ref']} received_at={iso(v['received_at_ms'])}"
        )
    if message.kind == "cancel":
        return (
            f"cancel {v['booking_id']} event={v['event_id']} by={v['by']!r} "
            f"requested_at={iso(v['requested_at_ms'])}"
        )
    if message.kind == "booking_event":
        return (
            f"{v['status']} {v['booking_id']} event={v['event_id']} seq={v['seq']} "
            f"user={v['user_id']!r} at={v['at']}"
        )
    return (
        f"booking {v['booking_id']} event={v['event_id']} user={v['user_id']!r} "
        f"quantity={v['quantity']} requested_at={iso(v['requested_at_ms'])}"
    )


def render_tail(info: TopicInfo, messages: Sequence[Message]) -> list[str]:
    lines = [
        f"{info.name}: last {len(messages)} of {_count(info.messages, 'message')} "
        f"({_count(len(info.partitions), 'partition')})"
    ]
    for m in messages:
        key = "-" if m.key is None else m.key
        lines.append(f"p{m.partition}@{m.offset}  {iso(m.timestamp_ms)}  key={key}  {describe(m)}")
        for name, value in m.headers.items():
            lines.append(f"    {name}: {value}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
    async with looking(settings) as look:
        return await _look(args, look)


async def _look(args: argparse.Namespace, look: KafkaLook) -> list[str]:
    settings = look.settings
    if args.command == "topics":
        if args.all:
            names = None
        elif args.topic:
            names = [args.topic]
        else:
            names = [settings.topic, settings.dlq_topic]
        return render_topics(await list_topics(look, names))
    if args.command == "group":
        group = args.group or settings.consumer_group
        return render_group(await describe_group(look, group, args.topic or settings.topic))
    topic = settings.dlq_topic if args.dlq else args.topic or settings.topic
    return render_tail(*await tail(look, topic, args.n))


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "tail" and args.n < 1:
        parser.error("-n must be at least 1")
    settings = load_or_exit()
    try:
        lines = asyncio.run(_run(args, settings))
    except TopicMissing as exc:
        print(f"{exc} on {settings.kafka_bootstrap}", file=sys.stderr)
        return EXIT_NO_TOPIC
    except (KafkaError, OSError, TimeoutError) as exc:
        print(f"Kafka at {settings.kafka_bootstrap} is unreachable: {exc!r}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
