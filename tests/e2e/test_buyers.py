"""Buyers in `token` mode, end to end: accounts, signed tokens, private bookings, and a rate
limit that holds when the API runs as two processes."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from scripts.pipeline import Pipeline
from scripts.sse import events
from scripts.waiting import eventually
from shared.config import Settings
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

SECRET = "an-e2e-secret-that-is-long-enough-0123456789"


def token_mode(settings: Settings, **changes: object) -> Settings:
    """The test's settings in token mode; sign-in is not rate limited (one address here)."""
    return msgspec.structs.replace(
        settings, buyer_auth="token", jwt_secret=SECRET, rate_limit_auth_per_s=0, **changes
    )


@pytest.fixture
async def buyers(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, httpx.AsyncClient]]:
    running = Pipeline(token_mode(topics), log_dir=tmp_path / "logs")
    running.start_api()
    running.start_worker()
    try:
        await running.wait_ready(path="/ready")
        async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
            yield running, client
    finally:
        running.stop()


async def sign_up(http: httpx.AsyncClient, email: str) -> tuple[str, dict[str, str]]:
    """Register and log in; the user id and the Authorization header."""
    password = "correct horse battery"
    registered = await http.post("/api/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    login = await http.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    body = login.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    return registered.json()["user_id"], {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_buyer_signs_in_books_and_sees_only_their_own_bookings(
    buyers: tuple[Pipeline, httpx.AsyncClient],
) -> None:
    pipeline, http = buyers
    sale = SaleClient(http, pipeline.settings.admin_token)
    event = await sale.create_event(capacity=10, per_user_limit=4)
    alice, as_alice = await sign_up(http, f"alice-{uuid.uuid4().hex[:6]}@example.com")
    _, as_bob = await sign_up(http, f"bob-{uuid.uuid4().hex[:6]}@example.com")

    ids = []
    for quantity in (1, 2, 1):  # no user_id in the body: the token names the buyer
        booked = await http.post(
            "/api/bookings", json={"event_id": event, "quantity": quantity}, headers=as_alice
        )
        assert booked.status_code == 202, booked.text
        ids.append(booked.json()["booking_id"])
    decided = await sale.wait_decided(ids)  # read with the admin token
    assert {b["status"] for b in decided.values()} == {"CONFIRMED"}
    assert {b["user_id"] for b in decided.values()} == {alice}

    mine = await http.get(f"/api/bookings/{ids[0]}", headers=as_alice)
    assert mine.status_code == 200 and mine.json()["user_id"] == alice
    theirs = await http.get(f"/api/bookings/{ids[0]}", headers=as_bob)
    assert theirs.status_code == 404, theirs.text  # not 403: nothing says it exists
    assert (await http.get(f"/api/bookings/{ids[0]}")).status_code == 401
    # Her booking's stream too: hers, and the decision at once; nobody else's.
    url = f"/api/bookings/{ids[0]}/events"
    async with http.stream("GET", url, headers=as_alice) as stream:
        statuses = [json.loads(e.data)["status"] async for e in events(stream)]
    assert statuses == ["CONFIRMED"]
    assert (await http.get(url, headers=as_bob)).status_code == 404
    assert (await http.get(url)).status_code == 401

    first = await http.get("/api/me/bookings", params={"limit": 2}, headers=as_alice)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [b["booking_id"] for b in page["bookings"]] == [ids[2], ids[1]]  # newest first
    rest = await http.get(
        "/api/me/bookings", params={"limit": 2, "cursor": page["next_cursor"]}, headers=as_alice
    )
    assert [b["booking_id"] for b in rest.json()["bookings"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None
    assert (await http.get("/api/me/bookings", headers=as_bob)).json()["bookings"] == []

    report = await sale.wait_clean(event)
    assert (report["verdict"], report["sold"]) == ("CLEAN", 4)


async def test_one_token_cannot_book_as_200_other_buyers(
    buyers: tuple[Pipeline, httpx.AsyncClient],
) -> None:
    pipeline, http = buyers
    sale = SaleClient(http, pipeline.settings.admin_token)
    event = await sale.create_event(capacity=500, per_user_limit=1)
    _, as_bot = await sign_up(http, f"bot-{uuid.uuid4().hex[:6]}@example.com")
    answers = await asyncio.gather(
        *(
            http.post(
                "/api/bookings",
                json={"event_id": event, "user_id": f"someone-{i}", "quantity": 1},
                headers=as_bot,
            )
            for i in range(200)
        )
    )
    assert Counter(a.status_code for a in answers) == {403: 200}
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    report = await sale.audit(event)
    assert (report["confirmed_bookings"], report["rejected_bookings"], report["sold"]) == (0, 0, 0)
    assert report["redis_available"] in (None, 500)


async def test_closing_the_account_and_signing_out_stop_its_tokens(
    buyers: tuple[Pipeline, httpx.AsyncClient],
) -> None:
    pipeline, http = buyers
    sale = SaleClient(http, pipeline.settings.admin_token)
    event = await sale.create_event(capacity=10, per_user_limit=10)
    email = f"carol-{uuid.uuid4().hex[:6]}@example.com"
    _, first = await sign_up(http, email)
    _, second = await sign_up(http, email.replace("carol", "dave"))
    book = {"event_id": event, "quantity": 1}

    assert (await http.post("/api/auth/logout", headers=first)).status_code == 204
    refused = await http.post("/api/bookings", json=book, headers=first)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]

    assert (await http.delete("/api/me", headers=second)).status_code == 204
    gone = await http.post("/api/bookings", json=book, headers=second)
    assert gone.status_code == 401, gone.text
    login = await http.post(
        "/api/auth/login",
        json={"email": email.replace("carol", "dave"), "password": "correct horse battery"},
    )
    assert login.status_code == 401
    assert (await sale.audit(event))["confirmed_bookings"] == 0


async def test_a_buyer_limit_holds_across_two_api_processes(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """10 requests a second for one buyer (no burst beyond one), the API as 2 processes, 40
    requests spread over one second on fresh connections: about 10 pass, not 20."""
    settings = token_mode(
        topics, api_workers=2, rate_limit_buyer_per_s=10.0, rate_limit_buyer_burst=1
    )
    pipeline = Pipeline(settings, log_dir=tmp_path / "logs")
    pipeline.start_api()
    try:
        await pipeline.wait_ready(path="/ready")
        async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as http:
            sale = SaleClient(http, settings.admin_token)
            event = await sale.create_event(capacity=1000, per_user_limit=1000)
            _, as_buyer = await sign_up(http, f"eve-{uuid.uuid4().hex[:6]}@example.com")
            _, as_other = await sign_up(http, f"warm-{uuid.uuid4().hex[:6]}@example.com")
        fresh = httpx.Limits(max_keepalive_connections=0)  # each request its own connection
        async with httpx.AsyncClient(base_url=pipeline.url, timeout=30, limits=fresh) as http:
            # Another buyer's bookings first, paced under the limit, so both processes have
            # made their first booking (connections to Redis and Kafka) before the timed
            # second: a slow first request would squeeze its arrivals into less time.
            for _ in range(6):
                warm = await http.post(
                    "/api/bookings", json={"event_id": event, "quantity": 1}, headers=as_other
                )
                assert warm.status_code == 202, warm.text
                await asyncio.sleep(0.12)
            started = time.monotonic()

            async def one(i: int) -> httpx.Response:
                await asyncio.sleep(max(0.0, started + i / 40 - time.monotonic()))
                return await http.post(
                    "/api/bookings", json={"event_id": event, "quantity": 1}, headers=as_buyer
                )

            answers = await asyncio.gather(*(one(i) for i in range(40)))
            metrics = (await http.get("/metrics")).text
    finally:
        pipeline.stop()
    codes = Counter(a.status_code for a in answers)
    assert set(codes) == {202, 429}, codes
    assert 9 <= codes[202] <= 13, codes
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= 1
    # Both processes' counts, added up by the multiprocess /metrics.
    found = re.search(
        r'^tickets_booking_requests_total\{outcome="rate_limited"\} (\S+)$', metrics, re.MULTILINE
    )
    assert found is not None and float(found.group(1)) == codes[429]


async def test_the_stack_secret_logs_nowhere(buyers: tuple[Pipeline, httpx.AsyncClient]) -> None:
    pipeline, http = buyers
    await sign_up(http, f"frank-{uuid.uuid4().hex[:6]}@example.com")

    def logged() -> str:
        return "".join(p.read_text(errors="replace") for p in pipeline.log_dir.glob("*.log"))

    async def mode_logged() -> bool:
        return "buyers" in logged()

    await eventually(mode_logged, "the API logged its mode")
    assert SECRET not in logged() and pipeline.settings.admin_token not in logged()


async def test_a_10_kb_authorization_header_is_refused_through_the_server(
    buyers: tuple[Pipeline, httpx.AsyncClient],
) -> None:
    pipeline, http = buyers
    sale = SaleClient(http, pipeline.settings.admin_token)
    event = await sale.create_event(capacity=10)
    answer = await http.post(
        "/api/bookings",
        json={"event_id": event, "quantity": 1},
        headers={"Authorization": "Bearer " + "a" * 10_240},
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    metrics = (await http.get("/metrics")).text
    assert 'tickets_booking_requests_total{outcome="unauthenticated"} 1.0' in metrics
    assert 'tickets_booking_requests_total{outcome="accepted"} 0.0' in metrics
