"""Admission tokens: what the on-sale queue gives an admitted buyer, and what both the API
and the worker check before a booking for a queued event goes anywhere.

An HS256 JWT `{"sub": buyer, "eid": event id, "iat", "exp", "typ": "admission"}` signed with
Settings.admission_key (derived from its own secret, so it is never an access token). The
worker judges a token against the request's `requested_at_ms`, not its own clock, so a
redelivery decides the same way as the first delivery did (shared/deadlines.py has the rule).
"""

from __future__ import annotations

import jwt

from shared.deadlines import admission_expires_at_s, admission_valid_at

ALGORITHM = "HS256"
TYPE = "admission"


def issue(key: bytes, buyer: str, event_id: int, admitted_at_ms: int, ttl_s: int) -> str:
    """The token of an admission at `admitted_at_ms`: the same text for every poll, so
    nothing needs to be stored."""
    issued_s = admitted_at_ms // 1000
    claims = {
        "sub": buyer,
        "eid": event_id,
        "iat": issued_s,
        "exp": admission_expires_at_s(admitted_at_ms, ttl_s),
        "typ": TYPE,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def refusal(key: bytes, token: str | None, buyer: str, event_id: int, at_ms: int) -> str | None:
    """Why `token` does not let `buyer` book `event_id` at `at_ms`; None when it does."""
    if not key:
        return "no admission key is configured (TICKETS_QUEUE_SECRET)"
    if not token:
        return "no admission token"
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            # exp is judged below, against the request's time (shared/deadlines.py); iat is
            # Redis's clock (TIME), so a host a little behind Redis would refuse fresh tokens.
            options={
                "require": ["sub", "eid", "exp", "typ"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        return f"invalid admission token: {exc}"
    if claims["typ"] != TYPE:
        return "not an admission token"
    if claims["sub"] != buyer or claims["eid"] != event_id:
        return "the admission token is another buyer's or another event's"
    if not admission_valid_at(int(claims["exp"]), at_ms):
        return "the admission token has expired"
    return None
