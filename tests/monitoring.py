"""A real Prometheus (Debian's, installed by `scripts/stack`) that a test starts, scraping the
test's API and worker processes every second with the dashboard's rules: the console's
charts are tested against it (tests/e2e, tests/browser)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from scripts.pipeline import Pipeline, spawn, terminate, wait_http
from scripts.waiting import eventually
from shared.config import Settings
from shared.dashboard import prometheus_config, rules_file

# Ports the test's Prometheus may take (kept apart from other services' on this machine).
PROMETHEUS_PORTS = range(49990, 50000)


def prometheus_port() -> int:
    for port in PROMETHEUS_PORTS:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise AssertionError(f"no free port for Prometheus in {PROMETHEUS_PORTS}")


@contextlib.asynccontextmanager
async def monitored_pipeline(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, str]]:
    """The API and a worker with `settings`, and a Prometheus scraping both every second:
    (pipeline, its URL)."""
    binary = shutil.which("prometheus")
    # Not a skip: the charts are part of the console, and `scripts/stack install` (as root,
    # as CI runs) installs Debian's prometheus.
    assert binary, "prometheus is not installed: run scripts/stack install as root"
    url = f"http://127.0.0.1:{prometheus_port()}"
    running = Pipeline(msgspec.structs.replace(settings, prometheus_url=url), tmp_path / "logs")
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
