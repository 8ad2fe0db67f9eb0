"""Bookings: accept (publish to Kafka, 202), and read back the decision."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated

import msgspec
import psycopg
import redis.exceptions
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Headers, State
from litestar.di import Provide
from litestar.enums import MediaType, ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import FromPath, QueryParameter

from api.auth import admin_only, buyer_of, credentials, may_read, reader
from api.context import InjectedServices, Services
from api.events import audit_or_404, get_event_view, services
from api.idempotency import fingerprint
from api.problems import documented, failure_of
from api.seats import choose
from shared import admission, deadlines
from shared.audit import AuditReport
from shared.contracts import BookingRequested, EventId, Quantity, UserId, new_booking_id
from shared.db import fetch_one, queries
from shared.decisions import BookingView
from shared.errors import (
    InvalidRequest,
    NotAdmitted,
    NotFound,
    Unacknowledged,
)
from shared.metrics import BOOKING_OUTCOME

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 255


@dataclass
class _CreateOperation(Operation):
    """POST /api/bookings reads its header and query parameters itself (see `create`), so
    they are declared here for the OpenAPI document."""

    def __post_init__(self) -> None:
        self.parameters = [
            *(self.parameters or []),
            OpenAPIParameter(
                name="Idempotency-Key",
                param_in=ParamType.HEADER,
                required=False,
                schema=Schema(
                    type=OpenAPIType.STRING, min_length=1, max_length=IDEMPOTENCY_KEY_MAX
                ),
                description="Repeat a request with the same key to get the same booking id.",
            ),
            OpenAPIParameter(
                name="eventId",
                param_in=ParamType.QUERY,
                required=False,
                schema=Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=2**62),
                description="Seed-compatible form, with userId and no body.",
            ),
            OpenAPIParameter(
                name="userId",
                param_in=ParamType.QUERY,
                required=False,
                schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=64),
                description="Seed-compatible form, with eventId and no body.",
            ),
        ]


# The seed-compatible `?eventId=` of the status and audit routes.
EventIdQuery = Annotated[int, QueryParameter(name="eventId", ge=1, le=2**62)]


SeatLabel = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class BookingCreate(msgspec.Struct, forbid_unknown_fields=True):
    event_id: Annotated[EventId, msgspec.Meta(le=2**62)]
    # Required in `open` mode; in `token` mode the token names the buyer, and a user_id
    # here must be the same one.
    user_id: UserId | None = None
    quantity: Quantity | None = None  # 1 unless seats are named (then their number)
    # Seat choice: these seats (all or none); or seats in a section, side by side in one
    # row when `together` (api/seats.py checks them against the event's layout).
    seats: Annotated[list[SeatLabel], msgspec.Meta(min_length=1, max_length=100)] | None = None
    section: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None
    together: bool = False
    # For an event sold through its queue: the token its queue entry got on admission.
    admission_token: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None


class Accepted(msgspec.Struct):
    booking_id: str
    status: str
    status_url: str


class Remaining(msgspec.Struct):
    event_id: int
    remaining: int


_decode_create = msgspec.json.Decoder(BookingCreate)


def idempotency_key(headers: Headers) -> str | None:
    key = headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidRequest(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters")
    return key


def _wanted(body: bytes, request: Request[object, object, State]) -> BookingCreate:
    """The JSON body; or, seed-compatible, `?eventId=&userId=` with no body (quantity 1).
    The query string is parsed only when there is one."""
    if not request.scope["query_string"]:
        return _parse(body)
    query = request.query_params
    if "eventId" in query and "userId" in query and not body.strip():
        raw_event = query["eventId"]
        if not (raw_event.isascii() and raw_event.isdigit()):
            raise InvalidRequest(f"eventId must be a positive integer, got {raw_event[:40]!r}")
        try:
            fields = {"event_id": int(raw_event), "user_id": query["userId"]}
            return msgspec.convert(fields, BookingCreate)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"invalid eventId/userId query parameters: {exc}") from exc
    return _parse(body)


def _parse(body: bytes) -> BookingCreate:
    if not body.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return _decode_create.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid booking request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc


class SoldOut(msgspec.Struct):
    status: str
    reason: str
    detail: str


# Encoded once: under a sold-out burst this answer is most of the traffic.
_SOLD_OUT_BODY = msgspec.json.encode(SoldOut("REJECTED", "SOLD_OUT", "the event is sold out"))


def _sold_out() -> Response[bytes]:
    return Response(_SOLD_OUT_BODY, status_code=409, media_type=MediaType.JSON)


def _check_admission(svc: Services, wanted: BookingCreate, user_id: str) -> None:
    """A queued event's booking needs this buyer's admission token for it (403 otherwise);
    the worker checks it again."""
    why = admission.refusal(
        svc.settings.admission_key,
        wanted.admission_token,
        user_id,
        wanted.event_id,
        deadlines.now_ms(),
    )
    if why is not None:
        raise NotAdmitted(f"{why}: this event sells to buyers its queue admitted")


class BookingIntake(Controller):
    """POST /api/bookings, the hottest route. It counts its own outcomes
    (tickets_booking_requests_total) and is mounted outside the generic HTTP-metrics
    middleware (api/app.py), and it reads its header and query parameters itself: both
    cost a measurable share of its throughput (docs/performance.md)."""

    path = "/api/bookings"
    tags = ["bookings"]

    @post(
        "/",
        status_code=202,
        summary="Request a booking (decided asynchronously)",
        description="Body `{event_id, user_id, quantity}`, optionally with a seat choice: "
        '`"seats": ["A-1-5", "A-1-6"]` (all or none), or `"section": "A"` with '
        '`"together": true` for seats side by side in one row; or, seed-compatible, no body '
        "and `?eventId=&userId=` (quantity 1). In token mode: `Authorization: Bearer "
        "<token>`, and `user_id` may be left out (the token names the buyer).",
        operation_class=_CreateOperation,
        responses={
            202: ResponseSpec(
                Accepted,
                description="Accepted: Kafka has the request; poll status_url for the decision",
                generate_examples=False,
            ),
            409: ResponseSpec(
                SoldOut,
                description="Sold out, known at the gate: nothing was published. (Also 409, "
                "as a problem: the same Idempotency-Key is still being handled.)",
                generate_examples=False,
            ),
            **documented(
                HTTPStatus.BAD_REQUEST,
                HTTPStatus.UNAUTHORIZED,
                HTTPStatus.FORBIDDEN,
                HTTPStatus.NOT_FOUND,
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                HTTPStatus.UNPROCESSABLE_ENTITY,
                HTTPStatus.TOO_MANY_REQUESTS,
                HTTPStatus.SERVICE_UNAVAILABLE,
            ),
        },
    )
    async def create(
        self, request: Request[object, object, State]
    ) -> Response[Accepted] | Response[bytes]:
        svc: Services = request.app.state.services  # no DI on the hot path
        outcome = "error"
        try:
            key = idempotency_key(request.headers)
            wanted = _wanted(await request.body(), request)
            user_id = buyer_of(svc.settings, svc.auth, credentials(request), wanted.user_id)
            outcome, response = await self._book(svc, request, wanted, user_id, key)
            return response
        except Exception as exc:
            outcome = failure_of(exc).outcome
            raise
        finally:
            BOOKING_OUTCOME[outcome].inc()

    async def _book(
        self,
        svc: Services,
        request: Request[object, object, State],
        wanted: BookingCreate,
        user_id: str,
        idempotency_key: str | None,
    ) -> tuple[str, Response[Accepted] | Response[bytes]]:
        """Publish one booking request; returns the metric outcome and the response. The rate
        limits are counted after the sold-out fast path (a 409 costs no Redis round trip)
        and before anything is published."""
        rules = await svc.event_rules(wanted.event_id)
        choice = choose(rules, wanted.quantity, wanted.seats, wanted.section, wanted.together)
        booking_uuid = new_booking_id()
        booking_id = str(booking_uuid)
        claim = None
        if idempotency_key is not None:
            print_ = fingerprint(wanted.event_id, user_id, choice.quantity, *choice.fingerprint())
            claim = await svc.idempotency.claim(user_id, idempotency_key, print_, booking_id)
            if not claim.first:
                return "replayed", self._accepted(claim.booking_id)
        try:
            # After the claim: a retry of a request already accepted gets its 202 again,
            # even once its admission token has lapsed.
            if rules.queue:
                _check_admission(svc, wanted, user_id)
            sold_out = await svc.availability.get(wanted.event_id) == 0
            if not sold_out:
                limited = svc.count_against_limits(request, user_id)
                if limited is not None:
                    svc.limiter.judge(await limited)
                now_ms = deadlines.now_ms()
                message = BookingRequested(
                    booking_id=booking_uuid,
                    event_id=wanted.event_id,
                    user_id=user_id,
                    quantity=choice.quantity,
                    requested_at_ms=now_ms,
                    expires_at_ms=deadlines.deadline_for(now_ms, svc.settings.produce_timeout_s),
                    seats=choice.seats,
                    section=choice.section,
                    together=choice.together,
                    admission=wanted.admission_token if rules.queue else None,
                )
                await svc.publisher.publish(message)
        except BaseException as exc:
            if isinstance(exc, Unacknowledged):
                await self._abandon(svc, booking_uuid)
            if claim is not None:
                await svc.idempotency.abandon(claim)
            raise
        if sold_out:
            if claim is not None:
                await svc.idempotency.abandon(claim)  # a retry may find stock again
            return "sold_out", _sold_out()
        # Kafka has it: from here on the answer is 202, whatever else fails.
        try:
            if claim is not None:
                await svc.idempotency.complete(claim)
            await svc.pending.submit(message)
        except redis.exceptions.RedisError as exc:
            log.warning("booking %s accepted but not cached: %r", booking_id, exc)
        return "accepted", self._accepted(booking_id)

    @staticmethod
    async def _abandon(svc: Services, booking_id: uuid.UUID) -> None:
        """Kafka may still deliver a message whose acknowledgement timed out; mark it in the
        ledger so the worker drops it rather than sell a seat to a buyer who was told 503."""
        try:
            await svc.abandon.submit(booking_id)
        except (psycopg.Error, OSError) as exc:
            log.warning("booking %s answered 503 but not marked abandoned: %r", booking_id, exc)

    @staticmethod
    def _accepted(booking_id: str) -> Response[Accepted]:
        url = f"/api/bookings/{booking_id}"
        return Response(
            Accepted(booking_id, "PENDING", url), status_code=202, headers={"Location": url}
        )


class BookingController(Controller):
    """Reading bookings back, and the seed-compatible status and audit routes."""

    path = "/api/bookings"
    tags = ["bookings"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get("/status", summary="Seed-compatible: an event's remaining count")
    async def remaining(
        self,
        svc: InjectedServices,
        event_id: EventIdQuery,
    ) -> Remaining:
        view = await get_event_view(svc, event_id)
        return Remaining(view.id, view.available)

    @get("/audit", guards=[admin_only], summary="Seed-compatible: the audit of an event")
    async def audit(
        self,
        svc: InjectedServices,
        event_id: EventIdQuery,
    ) -> AuditReport:
        return await audit_or_404(svc, event_id)

    @get(
        "/{booking_id:str}",
        summary="A booking's status: PENDING, HELD, CONFIRMED, REJECTED, EXPIRED or CANCELLED",
        description="In token mode, only to its buyer or an admin; anyone else gets 404.",
        responses=documented(
            HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND, HTTPStatus.SERVICE_UNAVAILABLE
        ),
    )
    async def read(
        self,
        booking_id: FromPath[str],
        svc: InjectedServices,
        request: Request[object, object, State],
    ) -> BookingView:
        return await booking_for(svc, request, booking_id)


async def booking_for(
    svc: Services, request: Request[object, object, State], booking_id: str
) -> BookingView:
    """The booking, if the caller may see it: in `token` mode its buyer or an admin; anyone
    else gets 404, which does not tell that it exists."""
    caller = reader(svc.settings, svc.auth, credentials(request))
    view = await find_booking(svc, booking_id)
    if not may_read(svc.settings, caller, view.user_id):
        raise NotFound(f"booking {booking_id} does not exist")
    return view


async def find_booking(svc: Services, booking_id: str) -> BookingView:
    try:
        parsed = uuid.UUID(booking_id)
    except ValueError:
        raise NotFound(f"booking {booking_id!r} does not exist") from None
    # The worker caches a decision only after PostgreSQL committed it, so a cached
    # PENDING is the truth too; PostgreSQL is asked when the cache has nothing, or only a
    # hold past its deadline.
    view = await svc.decisions.get(parsed)
    if view is not None:
        return view
    row = await fetch_one(svc.pool, queries.get_booking, {"booking_id": parsed})
    if row is not None:
        return BookingView.from_row(row)
    raise NotFound(f"booking {booking_id} does not exist")
