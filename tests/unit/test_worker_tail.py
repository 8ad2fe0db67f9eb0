"""The worker's batch tail: a batch whose decisions could not be recorded, or whose holds
could not be settled, holds back every later offset commit, so Kafka redelivers it instead
of skipping it."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from consumer.finalize import Settling
from consumer.worker import Worker
from scripts.pipeline import free_port
from shared.config import Settings
from shared.contracts import BookingRequested, Decision, Status
from shared.decisions import DecisionCache
from shared.inventory import Inventory, open_redis

pytestmark = pytest.mark.unit


class RecordingConsumer:
    """Stands in for the Kafka consumer's two calls the tail makes; records commits."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)

    def assignment(self) -> set[TopicPartition]:
        return set()


def decided_batch() -> list[tuple[BookingRequested, Decision]]:
    now_ms = int(time.time() * 1000)
    request = BookingRequested(uuid.uuid4(), 1, "u", 1, now_ms)
    return [(request, Decision(request.booking_id, Status.CONFIRMED, None, ("R1-1",), now_ms))]


@pytest.fixture
def live(redis_client: aioredis.Redis, settings: Settings) -> DecisionCache:
    return DecisionCache(redis_client, settings.redis_prefix, 60)


@pytest.fixture
async def settled(redis_client: aioredis.Redis, settings: Settings) -> Settling:
    """A batch with no holds left to settle."""
    return Settling(Inventory(redis_client, settings.redis_prefix), [])


def unreachable_redis(settings: Settings) -> aioredis.Redis:
    return open_redis(
        msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )


async def test_an_unrecorded_batch_blocks_later_commits(
    live: DecisionCache, settled: Settling, settings: Settings
) -> None:
    worker, consumer, tp = Worker(settings), RecordingConsumer(), TopicPartition("t", 0)
    # Redis unreachable while the worker is asked to stop: the tail gives up on batch 1.
    dead = unreachable_redis(settings)
    worker.stop.set()
    try:
        unreachable = DecisionCache(dead, settings.redis_prefix, 60)
        await worker._finish(consumer, unreachable, decided_batch(), settled, {tp: 10}, 0)
    finally:
        await dead.aclose()
    assert consumer.commits == []
    # Batch 2 (decided meanwhile) is recorded, but committing offset 20 would skip batch 1.
    second = decided_batch()
    await worker._finish(consumer, live, second, settled, {tp: 20}, 0)
    assert consumer.commits == []
    view = await live.get(second[0][0].booking_id)
    assert view is not None and view.status == "CONFIRMED"


async def test_recorded_batches_commit_in_order(
    live: DecisionCache, settled: Settling, settings: Settings
) -> None:
    worker, consumer, tp = Worker(settings), RecordingConsumer(), TopicPartition("t", 0)
    await worker._finish(consumer, live, decided_batch(), settled, {tp: 10}, 0)
    await worker._finish(consumer, live, decided_batch(), settled, {tp: 20}, 0)
    assert consumer.commits == [{tp: 10}, {tp: 20}]
    assert worker.decided == 2


async def test_a_batch_whose_holds_are_not_settled_is_not_committed(
    live: DecisionCache, settings: Settings
) -> None:
    worker, consumer, tp = Worker(settings), RecordingConsumer(), TopicPartition("t", 0)
    dead = unreachable_redis(settings)
    worker.stop.set()
    try:
        batch = decided_batch()
        ((request, _),) = batch
        unsettled = Settling(
            Inventory(dead, settings.redis_prefix),
            [(request.event_id, [(request.booking_id, True)])],
        )
        await worker._finish(consumer, live, batch, unsettled, {tp: 10}, 0)
    finally:
        await dead.aclose()
    assert consumer.commits == []  # redelivered, and settled then
    assert worker.decided == 0
