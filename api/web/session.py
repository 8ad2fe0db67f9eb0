"""The browser's session: signing in puts the buyer's token in an HttpOnly, SameSite=Strict
cookie (`api.auth.credentials` accepts it where no Authorization header is sent), signing
out revokes it, and Litestar's CSRF check guards every unsafe request the cookie could make
on the buyer's behalf. Requests with `Authorization: Bearer` and anonymous ones carry no
ambient credential, so they are not asked for a CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec
from litestar import Controller, Request, Response, delete, post
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie, State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.middleware.csrf import CSRFMiddleware
from litestar.params import JSONBody
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from api.accounts import Credentials, sign_in
from api.auth import SESSION_COOKIE, credentials
from api.context import InjectedServices
from api.events import services
from shared.config import Settings
from shared.errors import Unauthenticated

SESSION_PATH = "/api/auth/session"
CSRF_COOKIE = "csrftoken"  # read by the page's script, sent back as the header below
CSRF_HEADER = "x-csrftoken"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Session(msgspec.Struct):
    user_id: str
    role: str
    expires_in: int


def csrf_config(settings: Settings) -> CSRFConfig:
    """Every API process must verify the tokens any other one handed out, so the CSRF
    secret is derived from the shared token secret; without one there are no sessions and
    a per-process secret does."""
    shared = settings.jwt_secret or settings.admin_token
    secret = (
        hmac.new(shared.encode(), b"tickets csrf", hashlib.sha256).hexdigest()
        if shared
        else secrets.token_hex(32)
    )
    return CSRFConfig(
        secret=secret,
        cookie_name=CSRF_COOKIE,
        header_name=CSRF_HEADER,
        cookie_samesite="strict",
        cookie_httponly=False,  # the page's script copies it into the header
    )


class CSRFGate:
    """ASGI middleware: Litestar's `CSRFMiddleware` where a cookie acts for the buyer (an
    unsafe request with the session cookie and no Authorization header, and signing in or
    out), and on the pages, so they hand out the CSRF cookie. Everything else goes straight
    through: a plain header scan, since the booking POST passes here too."""

    def __init__(self, app: ASGIApp, config: CSRFConfig, pages: frozenset[str]) -> None:
        self.app = app
        self.checked = CSRFMiddleware(app, config)
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and self._guarded(scope):
            await self.checked(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _guarded(self, scope: HTTPScope) -> bool:
        if scope["method"] in _SAFE:
            return scope["path"] in self.pages
        if scope["path"].startswith(SESSION_PATH):
            return True
        cookie = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                return False
            if name == b"cookie" and SESSION_COOKIE.encode() in value:
                cookie = True
        return cookie


def _session_cookie(request: Request[object, object, State], token: str, max_age: int) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        max_age=max_age,
        httponly=True,  # the page's script never sees the token
        samesite="strict",
        # Marked Secure when served over HTTPS; plain http is the local stack on 127.0.0.1.
        secure=request.url.scheme == "https",
    )


class SessionController(Controller):
    """Signing in and out from the browser (the API's clients keep /api/auth/login)."""

    path = SESSION_PATH
    tags = ["accounts"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post("/", status_code=200, summary="Sign in from the browser: an HttpOnly session cookie")
    async def create(
        self,
        request: Request[object, object, State],
        data: JSONBody[Credentials],
        svc: InjectedServices,
    ) -> Response[Session]:
        user_id, role = await sign_in(request, data, svc)
        token, ttl_s = svc.auth.issue(user_id, role)
        return Response(
            Session(user_id, role, ttl_s), cookies=[_session_cookie(request, token, ttl_s)]
        )

    @delete("/", status_code=204, summary="Sign out from the browser: the token is revoked")
    async def end(
        self, request: Request[object, object, State], svc: InjectedServices
    ) -> Response[None]:
        try:
            caller = svc.auth.caller(credentials(request))
        except Unauthenticated:
            caller = None  # an expired or revoked session: clearing the cookie is all
        if caller is not None and caller.token_id is not None:
            await svc.auth.revocations.revoke_token(caller.token_id, caller.expires_at)
        return Response(None, status_code=204, cookies=[_session_cookie(request, "", 0)])
