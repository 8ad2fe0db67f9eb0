"""Fixtures for the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from shared.config import Settings
from tests.integration.ledger import Ledger


@pytest.fixture
async def ledger(topics: Settings, redis_client: aioredis.Redis) -> AsyncIterator[Ledger]:
    """The finalizer and gate over the test's own database, Redis keys and topics."""
    it = Ledger(topics, redis_client)
    await it.pool.open()
    yield it
    await it.pool.close()
