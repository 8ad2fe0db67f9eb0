"""Browser sessions in-process (the app factory over the real services): signing in from the
page sets an HttpOnly, SameSite=Strict cookie that the API accepts like a bearer token; a
cookie-authenticated unsafe request without the CSRF token is refused and publishes
nothing; bearer and anonymous requests need no CSRF token; signing out revokes the token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.config import Settings
from tests.integration.conftest import topic_size

pytestmark = pytest.mark.integration

SECRET = "a-web-session-secret-long-enough-0123456789"
PASSWORD = "correct horse battery"


@pytest.fixture
async def app_settings(topics: Settings, redis_client: aioredis.Redis) -> Settings:
    return msgspec.structs.replace(
        topics, buyer_auth="token", jwt_secret=SECRET, rate_limit_auth_per_s=0
    )


@pytest.fixture
async def api(app_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(app_settings)) as client:
        yield client


@pytest.fixture
async def published(app_settings: Settings) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    async with topic_size(app_settings) as count:
        yield count


@pytest.fixture
async def event(api: AsyncTestClient[Litestar], app_settings: Settings) -> int:
    created = await api.post(
        "/api/events",
        json={"name": "Cookies", "capacity": 10},
        headers={"Authorization": f"Bearer {app_settings.admin_token}"},
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def _signed_in(api: AsyncTestClient[Litestar], email: str) -> str:
    """Register, open the page (the CSRF cookie), sign in from it; the CSRF token."""
    registered = await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    page = await api.get("/")
    assert page.status_code == 200
    csrf = page.cookies["csrftoken"]
    session = await api.post(
        "/api/auth/session",
        json={"email": email, "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    assert session.status_code == 200, session.text
    assert "access_token" not in session.json()  # the script never holds the token
    set_cookie = session.headers["set-cookie"].lower()
    assert "tickets_session=" in set_cookie
    assert "httponly" in set_cookie
    assert "samesite=strict" in set_cookie
    return csrf


async def test_the_page_forbids_inline_scripts_and_hands_out_a_csrf_cookie(
    api: AsyncTestClient[Litestar],
) -> None:
    page = await api.get("/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "<script>" not in page.text and " onclick=" not in page.text
    assert page.cookies.get("csrftoken")


async def test_the_session_cookie_signs_the_buyer_in(
    api: AsyncTestClient[Litestar], event: int, published: Callable[[], Awaitable[int]]
) -> None:
    csrf = await _signed_in(api, "cookie@example.com")
    me = await api.get("/api/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "cookie@example.com"
    booked = await api.post(
        "/api/bookings", json={"event_id": event}, headers={"X-CSRFToken": csrf}
    )
    assert booked.status_code == 202, booked.text
    assert await published() == 1
    mine = await api.get(f"/api/bookings/{booked.json()['booking_id']}")
    assert mine.status_code == 200  # the cookie reads the buyer's own booking


async def test_a_cookie_post_without_the_csrf_token_is_refused_and_changes_nothing(
    api: AsyncTestClient[Litestar], event: int, published: Callable[[], Awaitable[int]]
) -> None:
    await _signed_in(api, "forged@example.com")
    for headers in ({}, {"X-CSRFToken": "not-the-token"}):
        answer = await api.post("/api/bookings", json={"event_id": event}, headers=headers)
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "CSRF" in answer.json()["detail"]
    assert await published() == 0
    out = await api.delete("/api/auth/session")  # signing out is guarded too
    assert out.status_code == 403
    assert (await api.get("/api/me")).status_code == 200


async def test_bearer_and_anonymous_requests_need_no_csrf_token(
    api: AsyncTestClient[Litestar], event: int, published: Callable[[], Awaitable[int]]
) -> None:
    # A browser signed in, then an API client of the same buyer with its bearer token:
    # with the browser's cookies sent along or not, the header decides.
    await _signed_in(api, "both@example.com")
    session_cookie = api.cookies["tickets_session"]
    api.cookies.clear()
    login = await api.post(
        "/api/auth/login", json={"email": "both@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert "set-cookie" not in login.headers  # the API's login sets no cookie
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    booked = await api.post("/api/bookings", json={"event_id": event}, headers=bearer)
    assert booked.status_code == 202, booked.text
    api.cookies.set("tickets_session", session_cookie)
    booked = await api.post("/api/bookings", json={"event_id": event}, headers=bearer)
    assert booked.status_code == 202, booked.text
    api.cookies.clear()
    assert await published() == 2
    anonymous = await api.post(
        "/api/auth/register", json={"email": "anon@example.com", "password": PASSWORD}
    )
    assert anonymous.status_code == 201


async def test_signing_out_clears_the_cookie_and_revokes_its_token(
    api: AsyncTestClient[Litestar],
) -> None:
    csrf = await _signed_in(api, "leaving@example.com")
    token = api.cookies["tickets_session"]
    out = await api.delete("/api/auth/session", headers={"X-CSRFToken": csrf})
    assert out.status_code == 204, out.text
    assert "tickets_session" not in api.cookies
    assert (await api.get("/api/me")).status_code == 401
    api.cookies.set("tickets_session", token)  # a copy kept by an attacker
    stolen = await api.get("/api/me")
    assert stolen.status_code == 401, stolen.text


async def test_an_empty_authorization_header_does_not_skip_the_csrf_check(
    api: AsyncTestClient[Litestar], event: int, published: Callable[[], Awaitable[int]]
) -> None:
    # credentials() falls back to the cookie for an empty header: so must the CSRF gate.
    await _signed_in(api, "empty-header@example.com")
    answer = await api.post(
        "/api/bookings", json={"event_id": event}, headers={"Authorization": ""}
    )
    assert answer.status_code == 403, answer.text
    assert "CSRF" in answer.json()["detail"]
    assert await published() == 0


async def test_a_form_field_does_not_stand_in_for_the_csrf_header(
    api: AsyncTestClient[Litestar],
) -> None:
    # A plain HTML form (from an origin that could plant the csrftoken cookie) cannot send
    # headers: Litestar's `_csrf_token` field must not be enough to sign the buyer out.
    csrf = await _signed_in(api, "form@example.com")
    out = await api.request(
        "DELETE",
        "/api/auth/session",
        content=f"_csrf_token={csrf}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert out.status_code == 403, out.text
    assert "X-CSRFToken" in out.json()["detail"]
    assert (await api.get("/api/me")).status_code == 200


async def test_signing_out_revokes_the_cookies_token_even_with_another_bearer(
    api: AsyncTestClient[Litestar],
) -> None:
    csrf = await _signed_in(api, "two-tokens@example.com")
    cookie_token = api.cookies["tickets_session"]
    login = await api.post(
        "/api/auth/login",
        json={"email": "two-tokens@example.com", "password": PASSWORD},
        headers={"X-CSRFToken": csrf},
    )
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    out = await api.delete("/api/auth/session", headers={"X-CSRFToken": csrf, **bearer})
    assert out.status_code == 204, out.text
    api.cookies.clear()
    api.cookies.set("tickets_session", cookie_token)
    assert (await api.get("/api/me")).status_code == 401  # the session's token is revoked
    api.cookies.clear()
    assert (await api.get("/api/me", headers=bearer)).status_code == 200  # not the client's


async def test_over_https_both_cookies_are_secure(app_settings: Settings) -> None:
    async with AsyncTestClient(
        create_app(app_settings), base_url="https://testserver.local"
    ) as api:
        page = await api.get("/")
        assert "secure" in page.headers["set-cookie"].lower()
        await api.post(
            "/api/auth/register", json={"email": "tls@example.com", "password": PASSWORD}
        )
        session = await api.post(
            "/api/auth/session",
            json={"email": "tls@example.com", "password": PASSWORD},
            headers={"X-CSRFToken": page.cookies["csrftoken"]},
        )
        assert session.status_code == 200, session.text
        assert "secure" in session.headers["set-cookie"].lower()
