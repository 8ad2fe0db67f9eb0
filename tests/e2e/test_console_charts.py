"""The console's charts against a real Prometheus (Debian's, installed by `scripts/stack`)
that this test starts, scraping the test's API and worker processes with the dashboard's
rules: after a small sale, every named query answers a series with the sale in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from scripts.pipeline import Pipeline
from scripts.waiting import eventually
from shared.config import Settings
from shared.dashboard import QUERIES
from tests.monitoring import monitored_pipeline
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


@pytest.fixture
async def monitored(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, str]]:
    """The API and a worker, and a Prometheus scraping both every second: (pipeline, its
    URL)."""
    async with monitored_pipeline(topics, tmp_path) as running:
        yield running


def last_value(series: dict[str, Any]) -> float | None:
    values = [v for _, v in series["points"] if v is not None]
    return values[-1] if values else None


async def test_charts_show_the_sale_from_prometheus(monitored: tuple[Pipeline, str]) -> None:
    pipeline, prometheus = monitored
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as http:
        sale = SaleClient(http, pipeline.settings.admin_token)
        event = await sale.create_event(capacity=20, per_user_limit=1)
        responses = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(40)))
        accepted = [r.json()["booking_id"] for r in responses if r.status_code == 202]
        await sale.wait_decided(accepted)

        async def charted() -> dict[str, dict[str, Any]] | None:
            response = await http.get(
                "/api/console/charts", params={"minutes": 5}, headers=sale.admin
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["configured"] is True
            by_name = {s["name"]: s for s in body["series"]}
            seen.update({name: last_value(series) for name, series in by_name.items()})
            ready = (
                (last_value(by_name["requests_per_s"]) or 0) > 0
                and (last_value(by_name["decisions_per_s"]) or 0) > 0
                and last_value(by_name["decision_latency_p99_s"]) is not None
                and last_value(by_name["worker_lag"]) == 0
            )
            return by_name if ready else None

        seen: dict[str, Any] = {}
        try:
            charts = await eventually(charted, "Prometheus has scraped the sale", 60, 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last values: {seen}") from None
    assert set(charts) == {q.name for q in QUERIES}
    for series in charts.values():
        assert series["points"], series["name"]
    assert 0 < last_value(charts["decision_latency_p50_s"]) <= 30  # type: ignore[operator]
    assert last_value(charts["held_seats"]) == 0  # no holds in this event

    # Prometheus loaded the same queries as recording rules, and they evaluate.
    async with httpx.AsyncClient(base_url=prometheus) as client:
        groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    recorded = {r["name"]: r["health"] for g in groups for r in g["rules"]}
    assert recorded == {q.record: "ok" for q in QUERIES}
