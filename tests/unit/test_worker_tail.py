"""The worker's batch tail: a batch whose decisions could not be recorded holds back every
later offset commit, so Kafka redelivers it instead of skipping it."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition

from consumer.worker import Worker
from scripts.pipeline import free_port
from shared.config import Settings
from shared.contracts import BookingRequested, Decision, Status
from shared.decisions import DecisionCache
from shared.inventory import open_redis

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


async def test_an_unrecorded_batch_blocks_later_commits(
    live: DecisionCache, settings: Settings
) -> None:
    worker, consumer, tp = Worker(settings), RecordingConsumer(), TopicPartition("t", 0)
    # Redis unreachable while the worker is asked to stop: the tail gives up on batch 1.
    dead = open_redis(
        msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    worker.stop.set()
    try:
        await worker._finish(
            consumer, DecisionCache(dead, settings.redis_prefix, 60), decided_batch(), {tp: 10}, 0
        )
    finally:
        await dead.aclose()
    assert consumer.commits == []
    # Batch 2 (decided meanwhile) is recorded, but committing offset 20 would skip batch 1.
    second = decided_batch()
    await worker._finish(consumer, live, second, {tp: 20}, 0)
    assert consumer.commits == []
    view = await live.get(second[0][0].booking_id)
    assert view is not None and view.status == "CONFIRMED"


async def test_recorded_batches_commit_in_order(live: DecisionCache, settings: Settings) -> None:
    worker, consumer, tp = Worker(settings), RecordingConsumer(), TopicPartition("t", 0)
    await worker._finish(consumer, live, decided_batch(), {tp: 10}, 0)
    await worker._finish(consumer, live, decided_batch(), {tp: 20}, 0)
    assert consumer.commits == [{tp: 10}, {tp: 20}]
    assert worker.decided == 2
