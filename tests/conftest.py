"""Fixtures over the real services of the native stack (`scripts/stack up --services-only`).

Every test gets its own database (cloned from a template built once from sql/), its own Redis
key prefix and its own Kafka topics and consumer group, so tests never see each other's data.
The in-process API tests share one such world per module (tests/integration/conftest.py).
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

from scripts.mail_sink import MailSink
from shared.config import Settings
from shared.db import migrate, with_database
from shared.redis_clients import open_redis
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


@contextlib.contextmanager
def fresh_database(admin_url: str, base_url: str, template: str | None) -> Iterator[str]:
    """A new database (a copy of `template`, or empty when None), dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield with_database(base_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def namespaced(base: Settings, database_url: str, namespace: str) -> Settings:
    """`base` with its own database, Redis prefix, topics, consumer group and admin token."""
    return msgspec.structs.replace(
        base.namespaced(namespace),
        database_url=database_url,
        topic_partitions=3,
        admin_token=f"admin-{namespace}",
    )


@contextlib.asynccontextmanager
async def own_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client; every key under the settings' prefix is deleted afterwards."""
    client = open_redis(settings)
    try:
        yield client
    finally:
        match = f"{settings.redis_prefix}:*"
        keys = [key async for key in client.scan_iter(match=match, count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@contextlib.asynccontextmanager
async def own_topics(settings: Settings) -> AsyncIterator[Settings]:
    """The settings' topics, created now and deleted afterwards."""
    await ensure_topics(settings)
    try:
        yield settings
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        await admin.start()
        with contextlib.suppress(Exception):
            topics = [settings.topic, settings.dlq_topic, settings.events_topic]
            await admin.delete_topics([*topics, settings.notify_dlq_topic])
        await admin.close()


@pytest.fixture
def database_url(admin_url: str, template_db: str, base_settings: Settings) -> Iterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    with fresh_database(admin_url, base_settings.database_url, template_db) as url:
        yield url


@pytest.fixture
def namespace() -> str:
    return new_namespace()


@pytest.fixture
def settings(base_settings: Settings, database_url: str, namespace: str) -> Settings:
    """Settings for one test: own database, Redis prefix, topics and consumer group."""
    return namespaced(base_settings, database_url, namespace)


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    async with own_redis(settings) as client:
        yield client


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[Settings]:
    """Creates the test's topics; deletes them afterwards."""
    async with own_topics(settings) as created:
        yield created


@pytest.fixture
def sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it receives."""
    it = MailSink()
    it.start()
    yield it
    it.stop()
