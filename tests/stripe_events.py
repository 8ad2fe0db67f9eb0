"""Stripe webhook deliveries for tests, signed locally the way Stripe signs them
(`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "<t>.<payload>">`), with a test secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def signed(event: dict[str, Any], secret: str, at: float | None = None) -> tuple[bytes, str]:
    """The payload and its Stripe-Signature header."""
    payload = json.dumps(event).encode()
    stamp = int(time.time() if at is None else at)
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    return payload, f"t={stamp},v1={mac.hexdigest()}"


def event(event_id: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}


def session_completed(
    event_id: str, booking_id: str, intent: str, amount: int = 5000
) -> dict[str, Any]:
    return event(
        event_id,
        "checkout.session.completed",
        {
            "id": f"cs_{event_id}",
            "object": "checkout.session",
            "client_reference_id": booking_id,
            "payment_intent": intent,
            "payment_status": "paid",
            "amount_total": amount,
        },
    )


def intent_event(event_id: str, kind: str, booking_id: str, intent: str) -> dict[str, Any]:
    return event(
        event_id,
        kind,
        {
            "id": intent,
            "object": "payment_intent",
            "amount_received": 5000,
            "metadata": {"booking_id": booking_id},
        },
    )
