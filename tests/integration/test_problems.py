"""How the API answers what it cannot do, against the API in this process: every error is an
application/problem+json body whose detail a person can read, with the status its metric
outcome agrees with; a dependency that is down means 503 with Retry-After, never a 202."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from api.app import create_app
from scripts.pipeline import free_port
from shared.config import Settings
from shared.keys import RedisKeys
from shared.redis_clients import open_redis
from tests.sale import SaleClient

pytestmark = pytest.mark.integration


def _counted(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("tickets_booking_requests_total", labels) or 0.0


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/api/bookings/no-such-id",
        "/api/bookings/7d3c3f7e-6f7b-4a8e-9d0e-000000000000",
        "/api/events/424242",
        "/api/events/424242/audit",
        "/api/bookings/audit?eventId=424242",
        "/api/bookings/status?eventId=424242",
    ],
)
async def test_what_does_not_exist_is_a_404_problem(
    api: AsyncTestClient[Litestar], sale: SaleClient, path: str
) -> None:
    body = _problem(await api.get(path, headers=sale.admin), 404)
    assert body["title"] == "Not Found"
    assert "does not exist" in body["detail"], body


async def test_a_401_says_how_to_authenticate(api: AsyncTestClient[Litestar]) -> None:
    refused = await api.get("/api/events/1/audit")
    _problem(refused, 401)
    assert refused.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("dependency", "broken", "says"),
    [
        ("kafka", {"kafka_bootstrap": "127.0.0.1:{port}", "produce_timeout_s": 1.0}, "Kafka"),
        ("redis", {"redis_url": "redis://127.0.0.1:{port}/0"}, "unavailable"),
    ],
)
async def test_a_dependency_down_means_503_never_202(
    api_settings: Settings,
    sale: SaleClient,
    published: Callable[[], Awaitable[int]],
    dependency: str,
    broken: dict[str, object],
    says: str,
) -> None:
    """An API whose broker or gate does not answer refuses bookings with 503 and Retry-After,
    and publishes nothing: it never admits unboundedly."""
    event = await sale.create_event(capacity=5, per_user_limit=5)
    before, unavailable = await published(), _counted("unavailable")
    port = free_port()  # nothing listens there
    changes = {k: v.format(port=port) if isinstance(v, str) else v for k, v in broken.items()}
    dead = create_app(msgspec.structs.replace(api_settings, **changes))
    async with AsyncTestClient(dead) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()[dependency] == "down", ready.text
        responses = [
            await client.post("/api/bookings", json={"event_id": event, "user_id": f"u{i}"})
            for i in range(10)
        ]
    for response in responses:
        body = _problem(response, 503)
        assert response.headers.get("retry-after"), response.headers
        assert says in body["detail"], body
    assert _counted("unavailable") - unavailable == len(responses)
    assert await published() == before


async def test_a_redis_command_error_is_a_500_counted_as_an_error_not_an_outage(
    api: AsyncTestClient[Litestar], api_settings: Settings, sale: SaleClient
) -> None:
    """A Redis error reply (here WRONGTYPE; a failing Lua script alike) is not cured by
    retrying: 500, and the metric says "error", never "unavailable"."""
    event = await sale.create_event(capacity=5)
    counter = RedisKeys(api_settings.redis_prefix).event(event).avail
    redis = open_redis(api_settings)
    try:
        await redis.delete(counter)
        await redis.hset(counter, "not", "a counter")
        errors, unavailable = _counted("error"), _counted("unavailable")
        response = await api.post("/api/bookings", json={"event_id": event, "user_id": "u"})
    finally:
        await redis.delete(counter)
        await redis.aclose()
    body = _problem(response, 500)
    assert body["detail"] == "internal error"  # the driver's message stays in the log
    assert "retry-after" not in response.headers
    assert (_counted("error") - errors, _counted("unavailable") - unavailable) == (1, 0)
