"""POST /api/webhooks/stripe: a Stripe payment for a held booking, verified with the stripe
library against TICKETS_STRIPE_WEBHOOK_SECRET, and published as a payment command.

Stripe delivers at least once, in any order, and retries whatever did not get a 2xx. So:
a bad signature is 400 and publishes nothing; an event that is not a successful payment is
acknowledged and ignored; a booking not decided yet is 409, which Stripe retries later. The
worker applies each Stripe event id once and each payment intent once, so a redelivery, or
both the session's and the intent's event for one payment, change nothing twice.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

import msgspec
import stripe
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import Provide

from api.bookings import find_booking
from api.context import InjectedServices
from api.events import services
from api.problems import documented
from shared import deadlines
from shared.contracts import PaymentReceived, Status
from shared.db import fetch_one, queries
from shared.errors import InvalidRequest, WrongStatus

log = logging.getLogger(__name__)

PAYMENT_EVENTS = ("checkout.session.completed", "payment_intent.succeeded")
MAX_PAYLOAD_BYTES = 256 * 1024  # Stripe's events are a few KiB; the API's default is 4 KiB


class Received(msgspec.Struct):
    received: bool
    published: bool  # False: nothing to apply (not a payment, or applied before)
    detail: str


class StripeWebhook(Controller):
    path = "/api/webhooks"
    tags = ["payments"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post(
        "/stripe",
        status_code=200,
        request_max_body_size=MAX_PAYLOAD_BYTES,
        summary="Stripe webhook: checkout.session.completed, payment_intent.succeeded",
        description="Signed with the endpoint's secret (Stripe-Signature). The booking is "
        "named by client_reference_id or metadata.booking_id.",
        responses=documented(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.NOT_FOUND,
            HTTPStatus.CONFLICT,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    )
    async def stripe(
        self, svc: InjectedServices, request: Request[object, object, State]
    ) -> Received:
        event = _verified(
            await request.body(),
            request.headers.get("stripe-signature"),
            svc.settings.stripe_webhook_secret,
        )
        kind, obj = str(event["type"]), event["data"]["object"]
        if kind not in PAYMENT_EVENTS:
            return Received(True, False, f"{kind} is not a payment event: ignored")
        if kind == "checkout.session.completed" and obj.get("payment_status") == "unpaid":
            return Received(True, False, "the checkout session is not paid yet: ignored")
        seen = {"event_id": event["id"]}
        if await fetch_one(svc.pool, queries.webhook_seen, seen) is not None:
            return Received(True, False, f"event {event['id']} was applied before")
        booking_id = _booking_id(obj)
        view = await find_booking(svc, str(booking_id))
        if view.status == Status.PENDING:
            raise WrongStatus(view.status, f"booking {booking_id} is not decided yet; retry")
        # One payment, one reference: the session's event names its payment intent, the
        # intent's event is the intent.
        ref = obj.get("payment_intent") if kind == "checkout.session.completed" else None
        now_ms = deadlines.now_ms()
        await svc.publisher.publish(
            PaymentReceived(
                booking_id=booking_id,
                event_id=view.event_id,
                provider="stripe",
                payment_ref=str(ref or obj["id"]),
                received_at_ms=now_ms,
                amount_cents=obj.get("amount_total") or obj.get("amount_received"),
                webhook_event_id=str(event["id"]),
                expires_at_ms=deadlines.deadline_for(now_ms, svc.settings.produce_timeout_s),
            )
        )
        return Received(True, True, f"payment for booking {booking_id} published")


def _verified(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    if not signature:
        raise InvalidRequest("the Stripe-Signature header is missing")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidRequest(f"the Stripe-Signature does not verify: {exc}") from None
    except ValueError as exc:
        raise InvalidRequest(f"the payload is not a Stripe event: {exc}") from None
    data: dict[str, Any] = event.to_dict()
    try:
        _ = data["id"], data["type"], data["data"]["object"]["id"]
    except (KeyError, TypeError):
        raise InvalidRequest("the payload is not a Stripe event") from None
    return data


def _booking_id(obj: dict[str, Any]) -> uuid.UUID:
    raw = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("booking_id")
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise InvalidRequest(
            "the payment names no booking (client_reference_id or metadata.booking_id)"
        ) from None
