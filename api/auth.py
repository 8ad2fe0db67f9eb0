"""Who is calling: buyers' signed tokens (Litestar's JWT `Token`), the admin guard, revoked
tokens, and which buyer a booking is for."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.exceptions
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    ImproperlyConfiguredException,
    NotAuthorizedException,
    PermissionDeniedException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import Token
from redis.asyncio import Redis

from shared.config import Settings
from shared.errors import Forbidden, InvalidRequest, Unauthenticated
from shared.keys import RedisKeys

ROLES = ("buyer", "admin")
MAX_TOKEN_CHARS = 4096  # a JWT of this service is ~300; an identity provider's stays well below
# Verifying a signature costs more than the rest of a booking request, so a token is verified
# once per process and its result kept, bounded, until it expires.
VERIFIED_MAX = 100_000
# The browser's session: the same kind of token, in an HttpOnly cookie (api/web/session.py
# sets it and guards its use with a CSRF token).
SESSION_COOKIE = "tickets_session"


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    role: str
    token_id: str | None
    expires_at: float  # epoch seconds

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Revocations:
    """Revoked token ids (logout) and deleted buyers. Written to a Redis sorted set scored by
    when each may be forgotten; every API process mirrors it by reading it every
    `interval_s`, so a request checks it without a round trip. Another process honours a
    revocation within `interval_s`; the process that revoked it, at once."""

    def __init__(self, redis: Redis, keys: RedisKeys, interval_s: float = 0.5) -> None:
        self._redis = redis
        self._key = keys.revoked
        self.interval_s = interval_s
        self._members: set[str] = set()

    def revoked(self, caller: Caller) -> bool:
        members = self._members
        return bool(members) and (
            f"sub:{caller.user_id}" in members or f"jti:{caller.token_id}" in members
        )

    async def revoke_token(self, token_id: str, until_s: float) -> None:
        await self._add(f"jti:{token_id}", until_s)

    async def revoke_user(self, user_id: str, until_s: float) -> None:
        await self._add(f"sub:{user_id}", until_s)

    async def _add(self, member: str, until_s: float) -> None:
        await self._redis.zadd(self._key, {member: int(until_s * 1000)})
        self._members.add(member)

    async def refresh(self) -> None:
        now_ms = int(time.time() * 1000)
        await self._redis.zremrangebyscore(self._key, "-inf", now_ms)
        members = await self._redis.zrangebyscore(self._key, now_ms, "+inf")
        self._members = {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def run(self) -> None:
        """Refresh until cancelled; a Redis outage keeps the last view and is retried."""
        while True:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await self.refresh()
            await asyncio.sleep(self.interval_s)


class Authenticator:
    """Verifies buyers' bearer tokens (HS256 with TICKETS_JWT_SECRET, or RS256/ES256 with an
    identity provider's TICKETS_JWT_PUBLIC_KEY) and, with a secret, issues them."""

    def __init__(self, settings: Settings, revocations: Revocations) -> None:
        self._key = settings.token_key
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer or None
        self._audience = settings.jwt_audience or None
        self._ttl_s = settings.access_token_ttl_s
        self._signs = settings.signs_tokens
        self.revocations = revocations
        self._verified: dict[str, Caller] = {}

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller an Authorization header names: None when there is none;
        Unauthenticated for anything but a valid, unexpired, unrevoked bearer token."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("expected the header Authorization: Bearer <token>")
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("the bearer token is too long")
        caller = self._verified.get(token)
        if caller is None:
            caller = self._verify(token)
            if len(self._verified) >= VERIFIED_MAX:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = caller
        if caller.expires_at <= time.time():
            raise Unauthenticated("the token has expired")
        if self.revocations.revoked(caller):
            raise Unauthenticated("the token has been revoked")
        return caller

    def _verify(self, token: str) -> Caller:
        if not self._key:
            raise Unauthenticated("this service is not configured to accept buyer tokens")
        try:
            decoded = Token.decode(
                token,
                self._key,
                self._algorithm,
                audience=self._audience,
                issuer=self._issuer,
                require_claims=["exp", "sub"],
            )
        except (NotAuthorizedException, ImproperlyConfiguredException) as exc:
            raise Unauthenticated(f"invalid token: {exc.detail}") from None
        role = decoded.extras.get("role", "buyer")
        if role not in ROLES:
            raise Unauthenticated(f"invalid token: unknown role {str(role)[:20]!r}")
        token_id = decoded.jti if isinstance(decoded.jti, str) else None
        return Caller(decoded.sub, role, token_id, decoded.exp.timestamp())

    def issue(self, user_id: str, role: str) -> tuple[str, int]:
        """A fresh access token for `user_id` and its lifetime in seconds."""
        if not self._signs:
            raise InvalidRequest("tokens come from the identity provider here")
        now = datetime.now(UTC)
        token = Token(
            exp=now + timedelta(seconds=self._ttl_s),
            sub=user_id,
            iat=now,
            iss=self._issuer,
            aud=self._audience,
            jti=uuid.uuid4().hex,
            extras={"role": role},
        )
        return token.encode(self._key, self._algorithm), self._ttl_s

    @property
    def ttl_s(self) -> int:
        return self._ttl_s


def credentials(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """What a request presents to `Authenticator.caller`: its Authorization header, else the
    browser session's cookie as a bearer token (EventSource cannot send headers)."""
    header = connection.headers.get("authorization")
    if header:
        return header
    token = connection.cookies.get(SESSION_COOKIE)
    return f"Bearer {token}" if token else None


def signed_in(authenticator: Authenticator, authorization: str | None) -> Caller:
    """The caller, who must have sent a valid token."""
    caller = authenticator.caller(authorization)
    if caller is None:
        raise Unauthenticated()
    return caller


def buyer_of(
    settings: Settings, authenticator: Authenticator, authorization: str | None, named: str | None
) -> str:
    """The buyer a booking is for. `token` mode: the token's subject, and a body naming
    anyone else is refused (403). `open` mode: whoever the body names."""
    if settings.buyer_auth == "open":
        if named is None:
            raise InvalidRequest("user_id is required")
        return named
    caller = signed_in(authenticator, authorization)
    if named is not None and named != caller.user_id:
        raise Forbidden("user_id names another buyer than the token's")
    return caller.user_id


def may_read(settings: Settings, caller: Caller | None, owner: str) -> bool:
    """Whether a booking of `owner` may be shown: in `token` mode only to its buyer or an
    admin (others get 404, which does not tell that it exists)."""
    if settings.buyer_auth == "open":
        return True
    return caller is not None and (caller.user_id == owner or caller.is_admin)


def reader(
    settings: Settings, authenticator: Authenticator, authorization: str | None
) -> Caller | None:
    """Who asks to read a buyer's record, for `may_read`: in `token` mode the caller
    (Unauthenticated without a valid token); None in `open` mode, where anyone may."""
    if settings.buyer_auth != "token":
        return None
    caller = identify(settings, authenticator, authorization)
    if caller is None:
        raise Unauthenticated()
    return caller


def identify(
    settings: Settings, authenticator: Authenticator, authorization: str | None
) -> Caller | None:
    """`Authenticator.caller`, where the static TICKETS_ADMIN_TOKEN also names an admin."""
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.admin_token
    bearer = scheme.lower() == "bearer"
    if expected and bearer and hmac.compare_digest(token.strip().encode(), expected.encode()):
        return ADMIN
    return authenticator.caller(authorization)


ADMIN = Caller("admin", "admin", None, float("inf"))


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: `Authorization: Bearer <TICKETS_ADMIN_TOKEN>`, or a buyer token with the role
    `admin`."""
    services = connection.app.state.services
    header = credentials(connection) or ""
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException(
            "admin bearer token required", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        caller = identify(services.settings, services.auth, header)
    except Unauthenticated:
        caller = None
    if caller is None or not caller.is_admin:
        raise PermissionDeniedException("invalid admin token")
