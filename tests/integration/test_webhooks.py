"""POST /api/webhooks/stripe refusing what it must not apply, against the API in this
process: each refusal is a problem (or an acknowledged no-op) and publishes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from shared.config import Settings
from tests import stripe_events

pytestmark = pytest.mark.integration

Published = Callable[[], Awaitable[int]]


async def _deliver(
    api: AsyncTestClient[Litestar], body: bytes, signature: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    response = await api.post("/api/webhooks/stripe", content=body, headers=headers)
    return response.status_code, response.json()


def _cases(secret: str) -> list[tuple[str, bytes, str | None, int]]:
    booking = str(uuid.uuid4())
    paid = stripe_events.session_completed("evt_a", booking, "pi_a")
    payload, good = stripe_events.signed(paid, secret)
    _, forged = stripe_events.signed(paid, "whsec_someone_else")
    _, stale = stripe_events.signed(paid, secret, at=1_000_000_000)  # outside the tolerance
    nameless = stripe_events.session_completed("evt_b", "not-a-uuid", "pi_b")
    ignored = stripe_events.intent_event("evt_c", "payment_intent.created", booking, "pi_c")
    huge = stripe_events.event("evt_d", "charge.updated", {"id": "ch", "pad": "x" * 300_000})
    return [
        ("no signature", payload, None, 400),
        ("garbage signature", payload, "t=1,v1=00", 400),
        ("another secret", payload, forged, 400),
        ("replayed from long ago", payload, stale, 400),
        ("signed, unknown booking", payload, good, 404),
        ("signed, no booking named", *stripe_events.signed(nameless, secret), 400),
        ("signed, not a payment", *stripe_events.signed(ignored, secret), 200),
        ("too large", *stripe_events.signed(huge, secret), 413),
    ]


async def test_refusals_publish_nothing(
    api: AsyncTestClient[Litestar], api_settings: Settings, published: Published
) -> None:
    before = await published()
    for what, body, signature, status in _cases(api_settings.stripe_webhook_secret):
        got, answer = await _deliver(api, body, signature)
        assert got == status, (what, answer)
        if status == 200:
            assert answer["published"] is False, what
        else:
            assert answer["detail"], what
    assert await published() == before
