"""The console's Kafka look against the real broker: a booking search keeps only the messages
naming the booking, merges overlapping windows and says which bound it reached; one search
a broker that failed is not waited for again at once; a
project topic that does not exist yet is left out of the topic list.
(One search at a time per API process: tests/e2e/test_console.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.overview import first_id_since
from shared.config import Settings
from shared.kafka_search import Bounds, find_booking, merge_windows
from shared.kafka_view import FAILED_FOR_S, KafkaLook, list_topics, looking

pytestmark = pytest.mark.integration


def booking_id_at(ms: int) -> uuid.UUID:
    return uuid.UUID(int=first_id_since(ms).int | uuid.uuid4().int & ((1 << 62) - 1))


@pytest.fixture
async def crowded(topics: Settings) -> AsyncIterator[tuple[uuid.UUID, int]]:
    """40 messages on partition 0 of the booking topic, the 21st naming the wanted booking;
    the wanted id and when the first was appended."""
    start_ms = int(time.time() * 1000)
    wanted = booking_id_at(start_ms)
    producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap_servers)
    await producer.start()
    try:
        for i in range(40):
            named = wanted if i == 20 else booking_id_at(start_ms)
            await producer.send_and_wait(
                topics.topic, f'{{"booking_id": "{named}"}}'.encode(), partition=0
            )
    finally:
        await producer.stop()
    yield wanted, start_ms


async def test_a_search_keeps_what_names_the_booking_within_its_bounds(
    topics: Settings, crowded: tuple[uuid.UUID, int]
) -> None:
    wanted, start_ms = crowded
    around = (start_ms - 5_000, start_ms + 60_000)
    overlapping = [around, (start_ms, start_ms + 1_000), (start_ms + 30_000, start_ms + 90_000)]
    async with looking(topics) as look:
        found = await find_booking(look, wanted, overlapping, None, topics.topic)
        assert [m.offset for m in found.messages] == [20]
        assert len(found.windows) == 1  # three overlapping windows read once
        assert found.scanned == 40 and found.bounds_hit == []

        # At most 10 per partition and window: the read stops before the booking, and says so.
        small = Bounds(per_partition=10)
        cut = await find_booking(look, wanted, [around], None, topics.topic, small)
        assert cut.messages == [] and cut.scanned == 10
        assert cut.bounds_hit == ["per_partition"]

        # At most 30 in all (over every partition, 10 each of 3 here).
        total = await find_booking(look, wanted, [around], None, topics.topic, Bounds(total=30))
        assert total.messages == [] and total.scanned == 10
        assert total.bounds_hit == ["total"]

        # Disjoint windows beyond the bound: the first (the id's) and the latest are kept.
        spans = [(start_ms + i * 100_000, start_ms + i * 100_000 + 10) for i in range(5)]
        few = await find_booking(look, wanted, spans, None, topics.topic, Bounds(windows=2))
        assert len(few.windows) == 2 and few.bounds_hit == ["windows"]


def test_windows_are_merged_and_capped() -> None:
    assert merge_windows([(5, 9), (0, 6), (20, 30)], 8) == ([(0, 9), (20, 30)], 0)
    assert merge_windows([(0, 1), (2, 3), (4, 5), (6, 7)], 2) == ([(0, 1), (6, 7)], 2)


async def test_a_failed_broker_is_not_waited_for_again_at_once(topics: Settings) -> None:
    nowhere = msgspec.structs.replace(topics, kafka_bootstrap="127.0.0.1:9")
    async with looking(nowhere) as look:
        with pytest.raises((KafkaError, OSError, TimeoutError)):
            await list_topics(look, [topics.topic])
        began = time.monotonic()
        with pytest.raises(KafkaError, match="failed less than"):
            await list_topics(look, [topics.topic])
        assert time.monotonic() - began < 0.5 < FAILED_FOR_S


async def test_the_look_is_kept_between_calls_and_survives_a_missing_topic(
    topics: Settings,
) -> None:
    look = KafkaLook(topics)
    try:
        gone = f"{topics.topic}-never-created"
        listed = await list_topics(look, [topics.topic, gone], skip_missing=True)
        assert [t.name for t in listed] == [topics.topic]
        again = await list_topics(look, [topics.dlq_topic])
        assert [t.name for t in again] == [topics.dlq_topic]
    finally:
        await look.close()


@pytest.fixture
async def console_api(
    topics: Settings, redis_client: aioredis.Redis
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Settings]]:
    # The notifier's dead-letter topic is made by the notifier: here it does not exist yet.
    settings = msgspec.structs.replace(topics, notify_dlq_topic=f"{topics.topic}-notify-dlq-x")
    async with AsyncTestClient(create_app(settings)) as client:
        yield client, settings


async def test_the_console_lists_the_topics_that_exist(
    console_api: tuple[AsyncTestClient[Litestar], Settings],
) -> None:
    api, s = console_api
    admin = {"Authorization": f"Bearer {s.admin_token}"}
    listed = await api.get("/api/console/kafka/topics", headers=admin)
    assert listed.status_code == 200, listed.text
    assert [t["name"] for t in listed.json()["topics"]] == [s.topic, s.dlq_topic, s.events_topic]
    missing = await api.get(
        f"/api/console/kafka/topics/{s.notify_dlq_topic}/messages", headers=admin
    )
    assert missing.status_code == 503, missing.text
    assert "does not exist" in missing.json()["detail"]
