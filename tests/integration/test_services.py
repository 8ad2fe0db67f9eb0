"""Smoke tests: the real services of the stack answer the way the code relies on."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.config import Settings

pytestmark = pytest.mark.integration


async def test_kafka_round_trip_with_group_and_manual_commit(topics: Settings) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()

    async def produce(values: list[bytes]) -> None:
        for value in values:
            await producer.send_and_wait(topics.topic, value, key=b"event-1")

    async def consume_in_group(expect: int) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topics.topic,
            bootstrap_servers=topics.bootstrap_servers,
            group_id=topics.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < expect:
                batch = await consumer.getmany(timeout_ms=10_000)
                assert batch, "no message within 10 s"
                for tp, records in batch.items():
                    got += [r.value for r in records if r.value is not None]
                    await consumer.commit({tp: records[-1].offset + 1})
        finally:
            await consumer.stop()
        return got

    try:
        first = [f"m{i}".encode() for i in range(5)]
        await produce(first)
        assert await consume_in_group(5) == first  # one key -> one partition -> in order
        # The group committed its offsets: the next member resumes after them.
        await produce([b"m5"])
        assert await consume_in_group(1) == [b"m5"]
    finally:
        await producer.stop()


def test_postgres_has_the_schema(settings: Settings) -> None:
    with psycopg.connect(settings.database_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        assert {"events", "bookings", "seats", "schema_migrations"} <= tables
        # The ledger refuses an oversell by itself.
        conn.execute("INSERT INTO events (name, capacity, per_user_limit) VALUES ('x', 2, 1)")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE events SET sold = 3")


async def test_redis_runs_lua(redis_client: aioredis.Redis, namespace: str) -> None:
    script = redis_client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    key = f"{namespace}:smoke:{uuid.uuid4()}"
    assert await script(keys=[key], args=[2]) == 2
    assert await script(keys=[key], args=[3]) == 5
