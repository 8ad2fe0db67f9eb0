"""Fixtures over the real services of the native stack (`scripts/stack up --services-only`).

Every test gets its own database (cloned from a template built once from sql/), its own Redis
key prefix and its own Kafka topics and consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import msgspec
import psycopg
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient

from shared.config import Settings
from shared.db import migrate, with_database
from shared.inventory import open_redis
from shared.topics import ensure_topics

# One template per test session, so concurrent sessions on one server do not collide.
TEMPLATE_DB = f"tickets_test_template_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The stack's settings from TICKETS_* (see `scripts/stack env`)."""
    return Settings.from_env()


@pytest.fixture(scope="session")
def admin_url(base_settings: Settings) -> str:
    return with_database(base_settings.database_url, "postgres")


@pytest.fixture(scope="session")
def template_db(admin_url: str, base_settings: Settings) -> Iterator[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    migrate(with_database(base_settings.database_url, TEMPLATE_DB))
    yield TEMPLATE_DB
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')


@pytest.fixture
def database_url(admin_url: str, template_db: str, base_settings: Settings) -> Iterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(base_settings.database_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(base_settings: Settings, database_url: str, namespace: str) -> Settings:
    """Settings for one test: own database, Redis prefix, topics and consumer group."""
    return msgspec.structs.replace(
        base_settings,
        database_url=database_url,
        redis_prefix=namespace,
        topic=f"{namespace}.booking-requests",
        dlq_topic=f"{namespace}.booking-requests.dlq",
        topic_partitions=3,
        consumer_group=f"{namespace}-finalizer",
        admin_token=f"admin-{namespace}",
    )


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = open_redis(settings)
    yield client
    keys = [key async for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[Settings]:
    """Creates the test's topics; deletes them afterwards."""
    await ensure_topics(settings)
    yield settings
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    with contextlib.suppress(Exception):
        await admin.delete_topics([settings.topic, settings.dlq_topic])
    await admin.close()
