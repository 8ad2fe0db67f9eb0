"""The worker's batch tail (consumer/tail.py) against a real Kafka group and Redis: a batch
whose decisions could not be recorded, or whose holds could not be settled, holds back every
later offset commit, so Kafka redelivers it instead of skipping it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.backoff import Backoff
from consumer.finalize import Outcome
from consumer.seat_map import SeatMaps
from consumer.settling import Settling
from consumer.tail import BatchTail, DecidedBatch
from scripts.pipeline import free_port
from shared.config import Settings
from shared.contracts import BookingRequested, Decision, Status
from shared.decisions import DecisionCache
from shared.inventory import Inventory
from shared.redis_clients import open_redis

pytestmark = pytest.mark.unit


@pytest.fixture
async def consumer(topics: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A member of the test's consumer group, owning partition 0 of its topic."""
    member = AIOKafkaConsumer(
        bootstrap_servers=topics.bootstrap_servers,
        group_id=topics.consumer_group,
        enable_auto_commit=False,
    )
    await member.start()
    member.assign([TopicPartition(topics.topic, 0)])
    yield member
    await member.stop()


@pytest.fixture
def tp(topics: Settings) -> TopicPartition:
    return TopicPartition(topics.topic, 0)


@pytest.fixture
def live(redis_client: aioredis.Redis, settings: Settings) -> DecisionCache:
    return DecisionCache(redis_client, settings.redis_prefix, 60)


@pytest.fixture
async def settled(redis_client: aioredis.Redis, settings: Settings) -> Settling:
    """A batch with no holds left to settle."""
    return Settling(Inventory(redis_client, settings.redis_prefix), [])


@pytest.fixture
async def dead_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = open_redis(
        msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    yield client
    await client.aclose()


def decided_batch(settling: Settling, offsets: dict[TopicPartition, int]) -> DecidedBatch:
    now_ms = int(time.time() * 1000)
    request = BookingRequested(uuid.uuid4(), 1, "u", 1, now_ms)
    decision = Decision(request.booking_id, Status.CONFIRMED, None, ("R1-1",), now_ms)
    outcome = Outcome([(request, decision)], [], settling)
    return DecidedBatch(outcome, offsets, time.monotonic())


def unsettled(dead_redis: aioredis.Redis, settings: Settings) -> Settling:
    """Holds that cannot be settled: their Redis is unreachable."""
    return Settling(
        Inventory(dead_redis, settings.redis_prefix), [(1, [(uuid.uuid4(), True)], [], [])]
    )


async def committed(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    offset: int | None = await consumer.committed(tp)
    return offset


async def test_recorded_batches_commit_in_order(
    consumer: AIOKafkaConsumer, tp: TopicPartition, live: DecisionCache, settled: Settling
) -> None:
    tail = BatchTail(
        consumer, live, SeatMaps(live._redis, "seat-maps"), Backoff(asyncio.Event(), 1.0)
    )
    first = decided_batch(settled, {tp: 10})
    tail.hand_over(first)
    await tail.finish()
    assert await committed(consumer, tp) == 10
    tail.hand_over(decided_batch(settled, {tp: 20}))
    await tail.finish()
    assert await committed(consumer, tp) == 20
    assert tail.decided == 2
    view = await live.get(first.outcome.decided[0][0].booking_id)
    assert view is not None and view.status == "CONFIRMED"


async def test_an_unrecorded_batch_blocks_later_commits(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    live: DecisionCache,
    settled: Settling,
    dead_redis: aioredis.Redis,
    settings: Settings,
) -> None:
    stop = asyncio.Event()
    tail = BatchTail(consumer, live, SeatMaps(live._redis, "seat-maps"), Backoff(stop, 1.0))
    # Batch 1's holds cannot be settled while the worker is asked to stop: it gives up.
    stop.set()
    tail.hand_over(decided_batch(unsettled(dead_redis, settings), {tp: 10}))
    await tail.finish()
    assert await committed(consumer, tp) is None
    assert tail.decided == 0
    # Batch 2 (decided meanwhile) is recorded, but committing offset 20 would skip batch 1.
    second = decided_batch(settled, {tp: 20})
    tail.hand_over(second)
    await tail.finish()
    assert await committed(consumer, tp) is None
    view = await live.get(second.outcome.decided[0][0].booking_id)
    assert view is not None and view.status == "CONFIRMED"


async def test_a_failing_record_is_retried_not_skipped(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    settled: Settling,
    dead_redis: aioredis.Redis,
    settings: Settings,
) -> None:
    stop = asyncio.Event()
    unreachable = DecisionCache(dead_redis, settings.redis_prefix, 60)
    tail = BatchTail(
        consumer, unreachable, SeatMaps(unreachable._redis, "unused"), Backoff(stop, 0.2)
    )
    tail.hand_over(decided_batch(settled, {tp: 10}))
    running = asyncio.ensure_future(tail.finish())
    done, _ = await asyncio.wait([running], timeout=1.0)
    assert not done, "the tail gave up on its batch while nobody asked it to stop"
    stop.set()
    await running  # asked to stop, it leaves the batch for redelivery
    assert await committed(consumer, tp) is None
    assert tail.decided == 0
