"""Kafka topics the project owns: created explicitly (auto-creation is off), checked end to end.

`python -m shared.topics` creates the topics when missing and proves the broker works with a
produce/consume round trip through a consumer group with a manual commit. Exit status 0 on
success, 1 with a message otherwise. The stack script uses it as Kafka's readiness check, and
`python -m shared.topics --node N` as the check of node N of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared import deadlines
from shared.config import Settings, load_or_exit

HEALTH_TOPIC = "tickets.health"


async def ensure_topics(settings: Settings, extra: tuple[str, ...] = ()) -> None:
    """Create the booking, booking-events and dead-letter topics (and `extra`) if they do
    not exist yet."""
    wanted = {
        settings.topic: settings.topic_partitions,
        settings.dlq_topic: 1,
        settings.events_topic: settings.topic_partitions,
        settings.notify_dlq_topic: 1,
        **{name: 1 for name in extra},
    }
    # The broker stamps booking requests with the time it appended them (shared/deadlines.py).
    topic_configs = {settings.topic: deadlines.BOOKING_TOPIC_CONFIG}
    replicas = settings.kafka_replication_factor
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=replicas,
                topic_configs={**topic_configs.get(name, {}), **replication_configs(replicas)},
            )
            for name, parts in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another process may create one between list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def replication_configs(replicas: int) -> dict[str, str]:
    """With copies on several brokers, a write (acks=all) is acknowledged once all but one
    of them have it: one broker may die without losing an acknowledged booking, and a topic
    still takes writes while it is down."""
    return {"min.insync.replicas": str(max(1, replicas - 1))} if replicas > 1 else {}


async def broker_listed(settings: Settings, node_id: int) -> bool:
    """True when the cluster's metadata lists `node_id` as a live broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return any(int(b["node_id"]) == node_id for b in cluster["brokers"])


async def round_trip(settings: Settings, timeout_s: float = 20.0) -> float:
    """Produce one message with acks=all and consume it back in a group; return seconds."""
    started = time.monotonic()
    token = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        meta = await producer.send_and_wait(HEALTH_TOPIC, token)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id="tickets-health",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(HEALTH_TOPIC, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500)
            if any(record.value == token for record in batch.get(tp, [])):
                await consumer.commit({tp: meta.offset + 1})
                return time.monotonic() - started
        raise TimeoutError("produced a message but could not consume it back")
    finally:
        await consumer.stop()


async def _main() -> int:
    settings = load_or_exit()
    if sys.argv[1:2] == ["--node"]:
        # The stack's readiness check of one node of a cluster.
        node = int(sys.argv[2])
        try:
            listed = await broker_listed(settings, node)
        except (KafkaError, OSError) as exc:
            print(f"kafka at {settings.kafka_bootstrap} is not ready: {exc!r}", file=sys.stderr)
            return 1
        print(f"broker {node} {'is' if listed else 'is not yet'} listed by the cluster")
        return 0 if listed else 1
    try:
        await ensure_topics(settings, extra=(HEALTH_TOPIC,))
        seconds = await round_trip(settings)
    except (KafkaError, TimeoutError, OSError) as exc:
        print(f"kafka at {settings.kafka_bootstrap} is not ready: {exc!r}", file=sys.stderr)
        return 1
    print(f"kafka ready at {settings.kafka_bootstrap}: topics present, round trip {seconds:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
