from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from scripts.pipeline import Pipeline, running_pipeline
from shared.config import Settings
from tests.sale import SaleClient


@pytest.fixture
async def pipeline(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """The API and one worker as real processes over the test's database, keys and topics."""
    async with running_pipeline(topics, tmp_path / "logs") as running:
        yield running


@pytest.fixture
async def sale(pipeline: Pipeline) -> AsyncIterator[SaleClient]:
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30, limits=limits) as client:
        yield SaleClient(client, pipeline.settings.admin_token)
