"""The console's charts against a real Prometheus (Debian's, installed by `scripts/stack`)
that this test starts, scraping the test's API and worker processes with the dashboard's
rules: after a small sale, every named query answers a series with the sale in it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from scripts.pipeline import Pipeline, spawn, terminate, wait_http
from scripts.waiting import eventually
from shared.config import Settings
from shared.dashboard import QUERIES, prometheus_config, rules_file
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

# Ports the test's Prometheus may take (kept apart from other services' on this machine).
PROMETHEUS_PORTS = range(49990, 50000)


def prometheus_port() -> int:
    for port in PROMETHEUS_PORTS:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise AssertionError(f"no free port for Prometheus in {PROMETHEUS_PORTS}")


@pytest.fixture
async def monitored(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, str]]:
    """The API and a worker, and a Prometheus scraping both every second: (pipeline, its
    URL)."""
    binary = shutil.which("prometheus")
    # Not a skip: the charts are part of the console, and `scripts/stack install` (as root,
    # as CI runs) installs Debian's prometheus.
    assert binary, "prometheus is not installed: run scripts/stack install as root"
    url = f"http://127.0.0.1:{prometheus_port()}"
    running = Pipeline(msgspec.structs.replace(topics, prometheus_url=url), tmp_path / "logs")
    running.start_api()
    running.start_worker()
    prometheus = None
    try:
        await running.wait_ready(path="/ready")
        rules = tmp_path / "rules.yml"
        rules.write_text(rules_file())
        worker = urlsplit(running.worker_metrics_urls[0]).netloc
        targets = {"api": [f"127.0.0.1:{running.port}"], "worker": [worker]}
        config = tmp_path / "prometheus.yml"
        config.write_text(prometheus_config(str(rules), targets, scrape_interval="1s"))
        prometheus = spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={urlsplit(url).netloc}",
            ],
            tmp_path / "logs" / "prometheus.log",
        )
        await wait_http(url, prometheus, path="/-/ready")
        # A counter's rise shows only between two scrapes: the sale starts after the first.
        await eventually(lambda: scraped(url, set(targets)), "Prometheus scrapes both targets")
        yield running, url
    finally:
        await asyncio.to_thread(terminate, prometheus)
        running.stop()


async def scraped(url: str, jobs: set[str]) -> bool:
    async with httpx.AsyncClient(base_url=url) as client:
        answer = (await client.get("/api/v1/query", params={"query": "up == 1"})).json()
    return {r["metric"]["job"] for r in answer["data"]["result"]} == jobs


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
