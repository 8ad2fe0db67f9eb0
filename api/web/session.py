"""The browser's session: signing in puts the buyer's token in an HttpOnly, SameSite=Strict
cookie (`api.auth.credentials` accepts it where no Authorization header is sent), signing
out revokes it. The CSRF gate that guards both, and every unsafe request the cookie could
make, is api/web/csrf.py."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, delete, post
from litestar.datastructures import Cookie, State
from litestar.di import Provide
from litestar.params import JSONBody

from api.accounts import Credentials, sign_in
from api.auth import SESSION_COOKIE
from api.context import InjectedServices
from api.events import services
from api.web.csrf import SESSION_PATH
from shared.errors import Unauthenticated


class Session(msgspec.Struct):
    user_id: str
    role: str
    expires_in: int


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
        # The cookie's token is the session's, whatever Authorization header comes along.
        token = request.cookies.get(SESSION_COOKIE)
        try:
            caller = svc.auth.caller(f"Bearer {token}") if token else None
        except Unauthenticated:
            caller = None  # an expired or revoked session: clearing the cookie is all
        if caller is not None and caller.token_id is not None:
            await svc.auth.revocations.revoke_token(caller.token_id, caller.expires_at)
        return Response(None, status_code=204, cookies=[_session_cookie(request, "", 0)])
