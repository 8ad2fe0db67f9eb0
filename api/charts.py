"""The console's charts: the dashboard's named queries (shared/dashboard.py) run over the
last minutes against the Prometheus at TICKETS_PROMETHEUS_URL (its HTTP API, query_range)."""

from __future__ import annotations

import asyncio
import math
import time
import urllib.parse

import httpx
import msgspec

from shared.dashboard import QUERIES, Query
from shared.errors import Unavailable

POINTS = 120  # per series: enough for a chart, small for the page
MIN_STEP_S = 5  # Prometheus scrapes every 5 s: finer steps repeat the same sample
TIMEOUT_S = 5.0


class PrometheusUnavailable(Unavailable):
    """Prometheus (TICKETS_PROMETHEUS_URL) did not answer; retry shortly."""


class Series(msgspec.Struct):
    name: str
    unit: str
    help: str
    expr: str
    labels: dict[str, str]
    points: list[tuple[float, float | None]]  # [unix seconds, value]; null for NaN


class Charts(msgspec.Struct):
    configured: bool
    detail: str
    start: float | None = None
    end: float | None = None
    step_s: int | None = None
    series: list[Series] = []


NOT_CONFIGURED = Charts(
    False, "charts are not configured: set TICKETS_PROMETHEUS_URL (scripts/stack up --monitoring)"
)


def shown(url: str) -> str:
    """The URL without its user and password, fit for a problem's detail."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


async def read_charts(prometheus_url: str, minutes: int) -> Charts:
    end = time.time()
    start = end - minutes * 60
    step = max(MIN_STEP_S, math.ceil(minutes * 60 / POINTS))
    params = {"start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    async with httpx.AsyncClient(base_url=prometheus_url, timeout=TIMEOUT_S) as client:
        try:
            answers = await asyncio.gather(*(_range(client, q, params) for q in QUERIES))
        except httpx.HTTPError as exc:
            # The exception's text can carry the URL, credentials and all: only its kind.
            raise PrometheusUnavailable(
                f"Prometheus at {shown(prometheus_url)} did not answer ({type(exc).__name__})"
            ) from exc
    series = [s for answer in answers for s in answer]
    return Charts(True, f"{len(QUERIES)} named queries", start, end, step, series)


async def _range(client: httpx.AsyncClient, query: Query, params: dict[str, str]) -> list[Series]:
    response = await client.get("/api/v1/query_range", params={**params, "query": query.expr})
    if response.status_code >= 500:
        raise PrometheusUnavailable(f"Prometheus answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # Not Prometheus' API: a proxy's error page, or another server at that address.
        raise PrometheusUnavailable(
            f"Prometheus answered {response.status_code} without its JSON for {query.name}"
        )
    if body.get("status") != "success":
        # A named query Prometheus refuses is our bug, not the caller's: say which one.
        raise PrometheusUnavailable(f"Prometheus refused {query.name}: {body.get('error')}")
    results = body["data"]["result"] or [{"metric": {}, "values": []}]
    return [
        Series(
            query.name,
            query.unit,
            query.help,
            query.expr,
            dict(r["metric"]),
            [(float(t), _number(v)) for t, v in r["values"]],
        )
        for r in results
    ]


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value
