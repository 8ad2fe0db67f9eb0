"""What POST /api/bookings and POST /api/events refuse, against the API in this process: each
refusal is a problem with its status, counted under the outcome that status means, and
publishes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from shared.metrics import BOOKING_OUTCOMES
from tests.sale import SaleClient

pytestmark = pytest.mark.integration

CAPACITY, LIMIT = 5, 2


@pytest.fixture(scope="module")
async def event(sale: SaleClient) -> int:
    return await sale.create_event(capacity=CAPACITY, per_user_limit=LIMIT)


Build = Callable[[int], dict[str, Any]]  # event id -> keyword arguments of client.post


def _body(**fields: Any) -> Build:
    """A JSON body; the value "EVENT" stands for the module's event id."""
    return lambda event: {"json": {k: event if v == "EVENT" else v for k, v in fields.items()}}


def _raw(content: bytes) -> Build:
    return lambda event: {"content": content}


def _query(template: str) -> Build:
    """The seed-compatible form: no body, `template` with {event} is the query string."""
    return lambda event: {"url": "/api/bookings?" + template.format(event=event)}


def _keyed(key: str) -> Build:
    return lambda event: {
        "json": {"event_id": event, "user_id": "u"},
        "headers": {"Idempotency-Key": key},
    }


# name: (request, status, tickets_booking_requests_total outcome)
REFUSALS: dict[str, tuple[Build, int, str]] = {
    "invalid JSON": (_raw(b"{not json"), 400, "invalid"),
    "empty body": (_raw(b""), 400, "invalid"),
    "missing field": (_body(event_id="EVENT"), 400, "invalid"),
    "extra field": (_body(event_id="EVENT", user_id="u", x=1), 400, "invalid"),
    "wrong type": (
        lambda event: {"json": {"event_id": str(event), "user_id": "u"}},
        400,
        "invalid",
    ),
    "user not a string": (_body(event_id="EVENT", user_id=5), 400, "invalid"),
    "empty user": (_body(event_id="EVENT", user_id=""), 400, "invalid"),
    "quantity 0": (_body(event_id="EVENT", user_id="u", quantity=0), 400, "invalid"),
    "negative": (_body(event_id="EVENT", user_id="u", quantity=-1), 400, "invalid"),
    "above limit": (_body(event_id="EVENT", user_id="u", quantity=LIMIT + 1), 422, "over_limit"),
    "unknown event": (_body(event_id=999999, user_id="u"), 404, "not_found"),
    "oversized": (
        _raw(b'{"event_id": 1, "user_id": "' + b"x" * 100_000 + b'"}'),
        413,
        "too_large",
    ),
    "long key": (_keyed("k" * 256), 400, "invalid"),
    "empty key": (_keyed(""), 400, "invalid"),
    "query event not a number": (_query("eventId=x&userId=u"), 400, "invalid"),
    "query event a float": (_query("eventId={event}.0&userId=u"), 400, "invalid"),
    "query user too long": (_query("eventId={event}&userId=" + "u" * 65), 400, "invalid"),
}


def _outcomes() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value("tickets_booking_requests_total", {"outcome": outcome})
        or 0.0
        for outcome in BOOKING_OUTCOMES
    }


@pytest.mark.parametrize(("build", "status", "outcome"), REFUSALS.values(), ids=list(REFUSALS))
async def test_a_bad_booking_is_refused_counted_and_publishes_nothing(
    api: AsyncTestClient[Litestar],
    sale: SaleClient,
    event: int,
    published: Callable[[], Awaitable[int]],
    build: Build,
    status: int,
    outcome: str,
) -> None:
    before, counted = await published(), _outcomes()
    response = await api.post(**{"url": "/api/bookings", **build(event)})

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["detail"], problem
    moved = {k: v - counted[k] for k, v in _outcomes().items() if v != counted[k]}
    assert moved == {outcome: 1}
    assert await published() == before
    report = await sale.audit(event)
    assert (report["sold"], report["redis_available"], report["verdict"]) == (0, CAPACITY, "CLEAN")


async def test_creating_an_event_needs_the_admin_and_valid_fields(
    api: AsyncTestClient[Litestar], sale: SaleClient
) -> None:
    no_admin = await api.post("/api/events", json={"name": "x", "capacity": 1})
    assert no_admin.status_code == 401, no_admin.text
    wrong_admin = await api.post(
        "/api/events", json={"name": "x", "capacity": 1}, headers={"Authorization": "Bearer no"}
    )
    assert wrong_admin.status_code == 403, wrong_admin.text
    for refused in (no_admin, wrong_admin):
        assert refused.headers["content-type"].startswith("application/problem+json")
    for body in (
        {"name": "", "capacity": 0},
        {"name": "x", "capacity": 1_000_001},
        {"name": "x" * 201, "capacity": 1},
        {"name": "x", "capacity": 1, "per_user_limit": 0},
        {"name": "x", "capacity": 1, "colour": "red"},
        {"capacity": 1},
    ):
        refused = await api.post("/api/events", json=body, headers=sale.admin)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json"), body
        assert refused.json()["detail"], body
