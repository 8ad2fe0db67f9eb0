"""Buyers' accounts: register and sign in (argon2id password hashes, a JWT on login), sign
out, close the account, and list one's own bookings."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Annotated

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import JSONBody, QueryParameter

from api.auth import credentials, signed_in
from api.context import InjectedServices, Services
from api.events import services
from shared.db import fetch_one, queries
from shared.decisions import BookingView
from shared.errors import EmailTaken, InvalidRequest, NotFound, Unauthenticated

MIN_PASSWORD_CHARS = 10
# Hashing is deliberately slow; longer inputs would only make it slower to refuse.
MAX_PASSWORD_CHARS = 1024
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_hasher = PasswordHasher()  # argon2id with the library's recommended costs
# Checked when the email is unknown, so that answers as slowly as a wrong password.
_NOBODY = _hasher.hash(uuid.uuid4().hex)


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_CHARS)]


class Registered(msgspec.Struct):
    user_id: str


class AccessToken(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int


class Me(msgspec.Struct):
    user_id: str
    email: str
    role: str


class BookingPage(msgspec.Struct):
    bookings: list[BookingView]
    next_cursor: str | None  # pass as ?cursor= for the next page; null on the last


def _email(raw: str) -> str:
    email = raw.strip()
    if not _EMAIL.fullmatch(email) or not email.isprintable():
        raise InvalidRequest("email must look like name@example.com")
    return email


async def _admit(request: Request[object, object, State], svc: Services) -> None:
    """Sign-in and registration count against the client address's auth limit."""
    await svc.limiter.admit((svc.limits.auth, svc.addresses.of(request)))


async def sign_in(
    request: Request[object, object, State], data: Credentials, svc: Services
) -> tuple[str, str]:
    """The user id and role these credentials sign in as (Unauthenticated otherwise); the
    API's login and the browser's session (api/web/session.py) both sign in here."""
    await _admit(request, svc)
    row = await fetch_one(svc.pool, queries.account_by_email, {"email": data.email.strip()})
    stored = row["password_hash"] if row is not None else _NOBODY
    try:
        await asyncio.to_thread(_hasher.verify, stored, data.password)
    except (VerificationError, InvalidHashError):
        row = None
    if row is None:
        raise Unauthenticated("wrong email or password")
    return row["user_id"], row["role"]


class AccountController(Controller):
    path = "/api/auth"
    tags = ["accounts"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post("/register", status_code=201, summary="Create a buyer account")
    async def register(
        self,
        request: Request[object, object, State],
        data: JSONBody[Credentials],
        svc: InjectedServices,
    ) -> Registered:
        email = _email(data.email)
        if len(data.password) < MIN_PASSWORD_CHARS:
            raise InvalidRequest(f"password must be at least {MIN_PASSWORD_CHARS} characters")
        await _admit(request, svc)
        password_hash = await asyncio.to_thread(_hasher.hash, data.password)
        user_id = str(uuid.uuid4())
        row = await fetch_one(
            svc.pool,
            queries.create_account,
            {"user_id": user_id, "email": email, "password_hash": password_hash, "role": "buyer"},
        )
        if row is None:
            raise EmailTaken()
        return Registered(user_id)

    @post("/login", status_code=200, summary="Sign in: an access token")
    async def login(
        self,
        request: Request[object, object, State],
        data: JSONBody[Credentials],
        svc: InjectedServices,
    ) -> AccessToken:
        user_id, role = await sign_in(request, data, svc)
        token, ttl_s = svc.auth.issue(user_id, role)
        return AccessToken(token, "bearer", ttl_s)

    @post("/logout", status_code=204, summary="Sign out: this token stops working")
    async def logout(self, request: Request[object, object, State], svc: InjectedServices) -> None:
        caller = signed_in(svc.auth, credentials(request))
        if caller.token_id is not None:
            await svc.auth.revocations.revoke_token(caller.token_id, caller.expires_at)


class MeController(Controller):
    path = "/api/me"
    tags = ["accounts"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/", summary="The signed-in buyer")
    async def me(self, request: Request[object, object, State], svc: InjectedServices) -> Me:
        caller = signed_in(svc.auth, credentials(request))
        row = await fetch_one(svc.pool, queries.account_by_id, {"user_id": caller.user_id})
        if row is None:
            raise NotFound("this account does not exist here (a token of an identity provider?)")
        return Me(row["user_id"], row["email"], row["role"])

    @delete("/", status_code=204, summary="Close the account: its tokens stop working")
    async def close(self, request: Request[object, object, State], svc: InjectedServices) -> None:
        caller = signed_in(svc.auth, credentials(request))
        row = await fetch_one(svc.pool, queries.delete_account, {"user_id": caller.user_id})
        if row is None:
            raise NotFound("this account does not exist here")
        # Every token issued so far expires within one token lifetime from now.
        until = max(caller.expires_at, time.time() + svc.auth.ttl_s)
        await svc.auth.revocations.revoke_user(caller.user_id, until)

    @get("/bookings", summary="The signed-in buyer's decided bookings, newest first")
    async def bookings(
        self,
        request: Request[object, object, State],
        svc: InjectedServices,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, QueryParameter(max_length=36)] = None,
    ) -> BookingPage:
        caller = signed_in(svc.auth, credentials(request))
        try:
            before = uuid.UUID(cursor) if cursor is not None else None
        except ValueError:
            raise InvalidRequest("cursor must be the next_cursor of a previous page") from None
        async with svc.pool.connection() as conn, conn.cursor() as cur:
            params = {"user_id": caller.user_id, "before": before, "limit": limit + 1}
            await cur.execute(queries.bookings_of_user, params)
            rows = await cur.fetchall()
        page = [BookingView.from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return BookingPage(page, page[-1].booking_id if more and page else None)
