"""Token mode in-process (the app factory over the real services): every bad credential is
refused with a problem and publishes nothing; sign-in does not tell which emails exist;
the rate limit answers 429 with its headers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
import psycopg
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from shared.config import Settings
from tests.integration.conftest import topic_size

pytestmark = pytest.mark.integration

SECRET = "an-integration-secret-long-enough-0123456789"
PASSWORD = "correct horse battery"


@pytest.fixture
async def app_settings(topics: Settings, redis_client: aioredis.Redis) -> Settings:
    return msgspec.structs.replace(
        topics,
        buyer_auth="token",
        jwt_secret=SECRET,
        rate_limit_auth_per_s=0,
        rate_limit_buyer_per_s=0.01,  # a burst of 3, then nothing for a long while
        rate_limit_buyer_burst=3,
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
        json={"name": "Tokens", "capacity": 100, "per_user_limit": 10},
        headers={"Authorization": f"Bearer {app_settings.admin_token}"},
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def signed(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    now = datetime.now(UTC)
    base = {"sub": "buyer-1", "exp": now + timedelta(minutes=5), "iat": now, "jti": "j1"}
    return jwt.encode({**base, **claims}, key, algorithm=algorithm)


def hs256_by_hand(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT built without PyJWT (which refuses an asymmetric key as an HMAC secret)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"


def unsigned() -> str:
    """An `alg: none` token: header and claims, no signature."""
    claims = {"sub": "buyer-1", "exp": int(time.time()) + 300}
    return jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]


BAD_AUTHORIZATION = {
    "no header": None,
    "another scheme": "Basic YnV5ZXI6cGFzcw==",
    "bearer without a token": "Bearer",
    "garbage": "Bearer not.a.token",
    "binary junk": "Bearer \x01\x02\x03",
    "expired": f"Bearer {signed({'exp': datetime.now(UTC) - timedelta(seconds=5)})}",
    "signed with another key": f"Bearer {signed({}, key='another-secret-just-as-long-0123456789')}",
    "alg none": f"Bearer {unsigned()}",
    "no subject": f"Bearer {signed({'sub': ''})}",
    "unknown role": f"Bearer {signed({'role': 'superuser'})}",
    "10 KB header": f"Bearer {'a' * 10_240}",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION.values(), ids=BAD_AUTHORIZATION.keys())
async def test_a_bad_token_is_401_and_publishes_nothing(
    api: AsyncTestClient[Litestar],
    event: int,
    published: Callable[[], Awaitable[int]],
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = await api.post(
        "/api/bookings", json={"event_id": event, "quantity": 1}, headers=headers
    )
    assert answer.status_code == 401, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == "Bearer"
    assert await published() == 0


async def test_a_token_books_for_its_subject_only(
    api: AsyncTestClient[Litestar], event: int, published: Callable[[], Awaitable[int]]
) -> None:
    mine = {"Authorization": f"Bearer {signed({'sub': 'buyer-7'})}"}
    other = await api.post(
        "/api/bookings", json={"event_id": event, "user_id": "buyer-8"}, headers=mine
    )
    assert other.status_code == 403, other.text
    seed = await api.post(f"/api/bookings?eventId={event}&userId=buyer-8", headers=mine)
    assert seed.status_code == 403, seed.text
    assert await published() == 0
    same = await api.post(
        "/api/bookings", json={"event_id": event, "user_id": "buyer-7"}, headers=mine
    )
    assert same.status_code == 202, same.text
    assert await published() == 1


async def test_admin_routes_take_the_admin_token_or_an_admin_jwt(
    api: AsyncTestClient[Litestar], event: int
) -> None:
    path = f"/api/events/{event}/audit"
    admin = {"Authorization": f"Bearer {signed({'sub': 'ops-1', 'role': 'admin'})}"}
    buyer = {"Authorization": f"Bearer {signed({'sub': 'buyer-1', 'role': 'buyer'})}"}
    forged = {"Authorization": f"Bearer {signed({'role': 'admin'}, key='x' * 40)}"}
    assert (await api.get(path, headers=admin)).status_code == 200
    assert (await api.get(path, headers=buyer)).status_code == 403
    assert (await api.get(path, headers=forged)).status_code == 403
    assert (await api.get(path)).status_code == 401


async def test_a_buyer_over_the_limit_gets_429_with_its_headers(
    api: AsyncTestClient[Litestar], event: int, published: Callable[[], Awaitable[int]]
) -> None:
    as_buyer = {"Authorization": f"Bearer {signed({'sub': 'eager'})}"}
    codes = []
    for _ in range(5):
        answer = await api.post(
            "/api/bookings", json={"event_id": event, "quantity": 1}, headers=as_buyer
        )
        codes.append(answer.status_code)
    assert codes == [202, 202, 202, 429, 429]
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) >= 90  # one request per 100 s refills
    assert answer.headers["ratelimit-limit"] == "3"
    assert answer.headers["ratelimit-remaining"] == "0"
    assert int(answer.headers["ratelimit-reset"]) >= int(answer.headers["retry-after"])
    assert await published() == 3
    other = {"Authorization": f"Bearer {signed({'sub': 'patient'})}"}
    answer = await api.post("/api/bookings", json={"event_id": event}, headers=other)
    assert answer.status_code == 202  # the limit is per buyer


BAD_REGISTRATIONS = {
    "weak password": ({"email": "weak@example.com", "password": "short"}, 400),
    "no at sign": ({"email": "nobody.example.com", "password": PASSWORD}, 400),
    "sql junk": ({"email": "'; DROP TABLE accounts; --", "password": PASSWORD}, 400),
    "control characters": ({"email": "a\u202eb@example.com", "password": PASSWORD}, 400),
    "email too long": ({"email": f"{'a' * 250}@example.com", "password": PASSWORD}, 400),
    "wrong types": ({"email": 123, "password": ["x"]}, 400),
    "unknown field": ({"email": "x@example.com", "password": PASSWORD, "role": "admin"}, 400),
    "missing password": ({"email": "x@example.com"}, 400),
}


@pytest.mark.parametrize(
    ("body", "status"), BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys()
)
async def test_a_bad_registration_is_refused_and_creates_no_account(
    api: AsyncTestClient[Litestar], app_settings: Settings, body: dict[str, Any], status: int
) -> None:
    answer = await api.post("/api/auth/register", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    async with await psycopg.AsyncConnection.connect(app_settings.database_url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM accounts")).fetchone()
    assert row == (0,)


async def test_invalid_json_to_register_is_400(api: AsyncTestClient[Litestar]) -> None:
    answer = await api.post(
        "/api/auth/register", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text


async def test_an_email_is_taken_whatever_its_case(api: AsyncTestClient[Litestar]) -> None:
    email = f"Grace-{uuid.uuid4().hex[:6]}@Example.com"
    first = await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert first.status_code == 201, first.text
    again = await api.post(
        "/api/auth/register", json={"email": email.lower(), "password": PASSWORD + "!"}
    )
    assert again.status_code == 409, again.text
    login = await api.post("/api/auth/login", json={"email": email.upper(), "password": PASSWORD})
    assert login.status_code == 200, login.text
    me = await api.get(
        "/api/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json() == {"user_id": first.json()["user_id"], "email": email, "role": "buyer"}


async def test_login_takes_as_long_for_an_unknown_email_as_for_a_wrong_password(
    api: AsyncTestClient[Litestar],
) -> None:
    """No user enumeration by timing: both run one argon2id verification."""
    email = f"heidi-{uuid.uuid4().hex[:6]}@example.com"
    assert (
        await api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    ).status_code == 201

    async def seconds(body: dict[str, str]) -> float:
        started = time.perf_counter()
        answer = await api.post("/api/auth/login", json=body)
        assert answer.status_code == 401
        assert answer.json()["detail"] == "wrong email or password"
        return time.perf_counter() - started

    wrong, unknown = [], []
    for i in range(5):
        wrong.append(await seconds({"email": email, "password": f"not it {i} at all"}))
        unknown.append(await seconds({"email": f"nobody-{i}@example.com", "password": PASSWORD}))
        await asyncio.sleep(0)
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (wrong, unknown)


@pytest.fixture
async def provider_api(
    app_settings: Settings,
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], Any]]:
    """The API verifying an outside identity provider's ES256 tokens (no secret of its own)."""
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = msgspec.structs.replace(
        app_settings,
        jwt_secret="",
        jwt_public_key=public_pem.decode(),
        jwt_algorithm="ES256",
        jwt_issuer="https://id.example.com",
        jwt_audience="tickets",
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield client, private


async def test_an_identity_providers_tokens_are_verified_with_its_public_key(
    provider_api: tuple[AsyncTestClient[Litestar], Any],
    app_settings: Settings,
    published: Callable[[], Awaitable[int]],
) -> None:
    api, private = provider_api
    admin = {"Authorization": f"Bearer {app_settings.admin_token}"}
    created = await api.post("/api/events", json={"name": "IdP", "capacity": 5}, headers=admin)
    event = created.json()["id"]
    claims = {"iss": "https://id.example.com", "aud": "tickets", "sub": "idp-user-1"}
    good = signed(claims, key=private, algorithm="ES256")
    wrong_issuer = signed({**claims, "iss": "https://evil.example.com"}, private, "ES256")
    wrong_audience = signed({**claims, "aud": "someone-else"}, private, "ES256")
    # Algorithm confusion: an HS256 token whose HMAC key is the public key's PEM text.
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = hs256_by_hand({**claims, "exp": int(time.time()) + 300}, public_pem)
    for token in (wrong_issuer, wrong_audience, signed(claims), confused):
        refused = await api.post(
            "/api/bookings", json={"event_id": event}, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401, refused.text
    assert await published() == 0
    booked = await api.post(
        "/api/bookings", json={"event_id": event}, headers={"Authorization": f"Bearer {good}"}
    )
    assert booked.status_code == 202, booked.text
    assert await published() == 1
    # The service signs nothing itself here: no register, no login.
    login = await api.post("/api/auth/login", json={"email": "a@example.com", "password": PASSWORD})
    assert login.status_code in (404, 405)


async def test_a_booking_stream_is_refused_to_anyone_but_its_buyer(
    api: AsyncTestClient[Litestar], event: int
) -> None:
    mine = {"Authorization": f"Bearer {signed({'sub': 'buyer-7'})}"}
    theirs = {"Authorization": f"Bearer {signed({'sub': 'buyer-8'})}"}
    booked = await api.post("/api/bookings", json={"event_id": event}, headers=mine)
    assert booked.status_code == 202, booked.text
    url = f"/api/bookings/{booked.json()['booking_id']}/events"
    assert (await api.get(url)).status_code == 401
    forged = {"Authorization": f"Bearer {signed({'sub': 'buyer-7'}, key=b'x' * 32)}"}
    assert (await api.get(url, headers=forged)).status_code == 401
    hidden = await api.get(url, headers=theirs)
    assert hidden.status_code == 404, hidden.text
    assert hidden.headers["content-type"].startswith("application/problem+json")
