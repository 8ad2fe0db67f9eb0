"""Fixtures for the integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.config import Settings
from tests.conftest import fresh_database, namespaced, new_namespace, own_redis, own_topics
from tests.integration.ledger import Ledger
from tests.sale import SaleClient


@pytest.fixture
async def ledger(topics: Settings, redis_client: aioredis.Redis) -> AsyncIterator[Ledger]:
    """The finalizer and gate over the test's own database, Redis keys and topics."""
    it = Ledger(topics, redis_client)
    await it.pool.open()
    yield it
    await it.pool.close()


@pytest.fixture(scope="module")
async def api_settings(
    admin_url: str, template_db: str, base_settings: Settings
) -> AsyncIterator[Settings]:
    """One database, Redis prefix and set of topics for a module of in-process API tests."""
    with fresh_database(admin_url, base_settings.database_url, template_db) as url:
        settings = namespaced(base_settings, url, new_namespace())
        async with own_topics(settings), own_redis(settings):
            yield settings


@pytest.fixture(scope="module")
async def api(api_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app factory's API in this process (Litestar's test client runs its lifespan),
    over the real services: no uvicorn, no worker."""
    async with AsyncTestClient(create_app(api_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def sale(api: AsyncTestClient[Litestar], api_settings: Settings) -> SaleClient:
    return SaleClient(api, api_settings.admin_token)


@contextlib.asynccontextmanager
async def topic_size(settings: Settings) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """How many messages the settings' booking topic holds, asked as often as needed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    partitions = [TopicPartition(settings.topic, p) for p in range(settings.topic_partitions)]

    async def count() -> int:
        return sum((await consumer.end_offsets(partitions)).values())

    try:
        yield count
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
async def published(api_settings: Settings) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """How many messages the module's booking topic holds."""
    async with topic_size(api_settings) as count:
        yield count
