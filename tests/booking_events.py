"""Reading the booking-events topic back in tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.config import Settings
from shared.contracts import partition_of


async def published(settings: Settings, event_id: int, count: int) -> list[dict[str, Any]]:
    """The event's messages on the booking-events topic, once `count` are there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = range(settings.topic_partitions)  # as ensure_topics created it
        tp = TopicPartition(settings.events_topic, partition_of(event_id, partitions))
        consumer.assign([tp])
        consumer.seek(tp, 0)
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            while len(messages) < count:
                for record in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.key == str(event_id).encode():
                        messages.append(json.loads(record.value or b""))
        return messages
    finally:
        await consumer.stop()
