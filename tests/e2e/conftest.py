from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from scripts.pipeline import Pipeline
from shared.config import Settings
from tests.sale import SaleClient


@pytest.fixture
async def pipeline(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """The API and one worker as real processes over the test's database, keys and topics."""
    running = Pipeline(topics, log_dir=tmp_path / "logs")
    running.start_api()
    running.start_worker()
    try:
        await running.wait_ready(path="/ready")
        yield running
    finally:
        running.stop()


@pytest.fixture
async def sale(pipeline: Pipeline) -> AsyncIterator[SaleClient]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30, limits=limits) as client:
        yield SaleClient(client, pipeline.settings.admin_token)
