"""Buyer tokens for load and chaos traffic in `token` mode: signed here with the service's
HS256 secret, as login would issue them, so a simulated buyer needs no login round trip.
Which mode the API runs comes from TICKETS_BUYER_AUTH (the local stack's default: open)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Literal

from scripts.loadgen.api import ROOT, stack_secret
from scripts.loadgen.client import UsageError

BuyerAuth = Literal["token", "open"]
BUYER_AUTH_MODES: tuple[BuyerAuth, ...] = ("token", "open")
SECRET_FILE = ROOT / ".stack" / "jwt-secret"
# Long enough to outlast any run: tokens are minted once, before the first request.
TOKEN_TTL_S = 3600


def buyer_auth_from_env() -> BuyerAuth:
    """TICKETS_BUYER_AUTH, else open (what the local stack runs unless told otherwise)."""
    mode = os.environ.get("TICKETS_BUYER_AUTH") or "open"
    for known in BUYER_AUTH_MODES:
        if mode == known:
            return known
    raise UsageError(f"TICKETS_BUYER_AUTH must be token or open, got {mode!r}")


def jwt_secret_from_env() -> str:
    """TICKETS_JWT_SECRET, else the native stack's generated secret file, else ''."""
    return stack_secret("TICKETS_JWT_SECRET", SECRET_FILE)


class TokenMinter:
    """Signs buyer tokens (`sub` = the buyer, `role` buyer, a fresh `jti`), all valid from
    the minter's creation for `ttl_s`."""

    def __init__(self, secret: str, ttl_s: int = TOKEN_TTL_S) -> None:
        if not secret:
            raise UsageError(
                "token mode needs the API's signing secret: set TICKETS_JWT_SECRET "
                "(the stack writes it to .stack/jwt-secret)"
            )
        try:
            import jwt  # PyJWT, installed with litestar[jwt]; open mode does without it
        except ImportError:
            raise UsageError("token mode needs PyJWT (the project's .venv has it)") from None
        self._encode = jwt.encode
        self._secret = secret
        self._issued_at = int(time.time())
        self._expires_at = self._issued_at + ttl_s

    def mint(self, user_id: str) -> str:
        claims = {
            "sub": user_id,
            "iat": self._issued_at,
            "exp": self._expires_at,
            "jti": uuid.uuid4().hex,
            "role": "buyer",
        }
        return self._encode(claims, self._secret, algorithm="HS256")
