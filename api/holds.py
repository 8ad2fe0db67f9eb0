"""Paying for a held booking and cancelling one: each checks what the caller may do, then
publishes a command on the event's stream (the worker decides it, consumer/lifecycle.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from api.auth import credentials, identify
from api.bookings import Accepted, booking_for, idempotency_key
from api.context import InjectedServices, Services
from api.events import services
from api.problems import documented
from shared import deadlines
from shared.contracts import CancelRequested, Command, PaymentReceived, PaymentRef, Status
from shared.decisions import BookingView
from shared.errors import Forbidden, WrongStatus


class PaymentCreate(msgspec.Struct, forbid_unknown_fields=True):
    # The built-in dev provider's reference of the payment; the same reference twice is
    # the same payment, applied once.
    payment_ref: PaymentRef


class HoldController(Controller):
    path = "/api/bookings"
    tags = ["bookings"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post(
        "/{booking_id:str}/payment",
        status_code=202,
        summary="Pay for a HELD booking (the built-in dev provider)",
        description="202: the payment is on Kafka; poll the booking until CONFIRMED. A payment "
        "that reaches the worker after the hold expired does not confirm: it is recorded for "
        "refund. Only the booking's buyer, in token mode.",
        responses=documented(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.UNAUTHORIZED,
            HTTPStatus.NOT_FOUND,
            HTTPStatus.CONFLICT,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    )
    async def pay(
        self,
        booking_id: FromPath[str],
        data: JSONBody[PaymentCreate],
        svc: InjectedServices,
        request: Request[object, object, State],
    ) -> Response[Accepted]:
        view = await booking_for(svc, request, booking_id)
        caller = identify(svc.settings, svc.auth, credentials(request))
        if caller is not None and caller.is_admin and caller.user_id != view.user_id:
            raise Forbidden("only the booking's buyer pays for it")
        now_ms = deadlines.now_ms()
        message = PaymentReceived(
            booking_id=uuid.UUID(view.booking_id),
            event_id=view.event_id,
            provider="dev",
            payment_ref=data.payment_ref,
            received_at_ms=now_ms,
            expires_at_ms=deadlines.deadline_for(now_ms, svc.settings.produce_timeout_s),
        )
        key = idempotency_key(request.headers)
        print_ = _fingerprint("pay", view.booking_id, data.payment_ref)
        await _publish_once(svc, view, key, print_, message, lambda: _must_be_payable(view))
        return _accepted(view.booking_id, Status.HELD)

    @post(
        "/{booking_id:str}/cancel",
        status_code=202,
        summary="Cancel a HELD or CONFIRMED booking (its buyer, or an admin)",
        description="202: the cancellation is on Kafka; poll the booking until CANCELLED. "
        "Its seats and stock come back exactly once; cancelling twice changes nothing.",
        responses=documented(
            HTTPStatus.UNAUTHORIZED,
            HTTPStatus.NOT_FOUND,
            HTTPStatus.CONFLICT,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    )
    async def cancel(
        self,
        booking_id: FromPath[str],
        svc: InjectedServices,
        request: Request[object, object, State],
    ) -> Response[Accepted]:
        view = await booking_for(svc, request, booking_id)
        if view.status not in (Status.HELD, Status.CONFIRMED):
            raise WrongStatus(view.status, f"a {view.status} booking cannot be cancelled")
        caller = identify(svc.settings, svc.auth, credentials(request))
        now_ms = deadlines.now_ms()
        message = CancelRequested(
            booking_id=uuid.UUID(view.booking_id),
            event_id=view.event_id,
            by=caller.user_id if caller is not None else view.user_id,
            requested_at_ms=now_ms,
            expires_at_ms=deadlines.deadline_for(now_ms, svc.settings.produce_timeout_s),
        )
        await svc.publisher.publish(message)
        return _accepted(view.booking_id, Status(view.status))


def _must_be_payable(view: BookingView) -> None:
    if view.status != Status.HELD:
        raise WrongStatus(view.status, f"a {view.status} booking cannot be paid for")
    if view.hold_expires_at is not None and _passed(view.hold_expires_at):
        raise WrongStatus(Status.EXPIRED, f"the hold expired at {view.hold_expires_at}")


def _passed(iso: str) -> bool:
    return dt.datetime.fromisoformat(iso).timestamp() <= time.time()


async def _publish_once(
    svc: Services,
    view: BookingView,
    key: str | None,
    print_: str,
    message: Command,
    check: Callable[[], None],
) -> None:
    """Publish if `check()` lets it; with an Idempotency-Key already used for the same
    request, nothing: a replay gets the first answer, whatever the booking became since
    (and a key reused with another body is refused first)."""
    if key is None:
        check()
        await svc.publisher.publish(message)
        return
    claim = await svc.idempotency.claim(f"pay\x00{view.user_id}", key, print_, view.booking_id)
    if not claim.first:
        return
    try:
        check()
        await svc.publisher.publish(message)
    except BaseException:
        await svc.idempotency.abandon(claim)
        raise
    await svc.idempotency.complete(claim)


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _accepted(booking_id: str, status: Status) -> Response[Accepted]:
    url = f"/api/bookings/{booking_id}"
    return Response(Accepted(booking_id, status, url), status_code=202, headers={"Location": url})
