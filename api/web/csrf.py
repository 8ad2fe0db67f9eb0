"""The CSRF gate: Litestar's double-submit check (a signed `csrftoken` cookie the page's
script echoes in `X-CSRFToken`) wherever the browser's session cookie could act for the buyer.
Requests with a bearer token and anonymous ones carry no ambient credential, so they are not
asked for a CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace

from litestar.config.csrf import CSRFConfig
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from api.auth import SESSION_COOKIE
from shared.config import Settings

SESSION_PATH = "/api/auth/session"
CSRF_COOKIE = "csrftoken"  # read by the page's script, sent back as the header below
CSRF_HEADER = "x-csrftoken"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


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
    unsafe request with the session cookie and no bearer token, and signing in or out), and
    on the pages, so they hand out the CSRF cookie (`Secure` over HTTPS). Everything else goes
    straight through: a plain header scan, since the booking POST passes here too."""

    def __init__(self, app: ASGIApp, config: CSRFConfig, pages: frozenset[str]) -> None:
        self.app = app
        self.checked = CSRFMiddleware(app, config)
        self.checked_https = CSRFMiddleware(app, replace(config, cookie_secure=True))
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in _SAFE and not _header(scope, CSRF_HEADER.encode()):
            # Litestar would also take a `_csrf_token` form field: a plain HTML form from a
            # sibling origin that planted the cookie could then post. Only script sends headers.
            raise PermissionDeniedException("CSRF token verification failed: no X-CSRFToken")
        https = scope["scheme"] == "https"
        await (self.checked_https if https else self.checked)(scope, receive, send)

    def _guarded(self, scope: HTTPScope) -> bool:
        if scope["method"] in _SAFE:
            return scope["path"] in self.pages
        if scope["path"].startswith(SESSION_PATH):
            return True
        # The same test as api.auth.credentials: a non-empty Authorization header is used,
        # else the cookie is.
        if _header(scope, b"authorization"):
            return False
        cookie = _header(scope, b"cookie")
        return cookie is not None and SESSION_COOKIE.encode() in cookie


def _header(scope: HTTPScope, name: bytes) -> bytes | None:
    """A request header's first value (as Litestar's `headers.get`), None when empty."""
    for key, value in scope["headers"]:
        if key == name:
            return value or None
    return None
