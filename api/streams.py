"""Server-Sent Events: a booking's status as it changes, and an event's availability.

Both streams read the current state when they open and again whenever the process's one
Redis subscription says it changed (api/live.py); polling keeps working, and nothing else
depends on a stream being open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import FromPath, HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.bookings import booking_for, find_booking
from api.context import InjectedServices, Services
from api.events import EventIdParam, services
from api.seats import snapshot_of
from shared.contracts import Status
from shared.decisions import view_of
from shared.metrics import STREAM_CONNECTIONS
from shared.seating import SeatMapView, availability_of

# Where a booking stream ends: the purchase is decided (a later cancellation of a CONFIRMED
# booking is its buyer's own act, read by polling).
FINAL = frozenset({Status.CONFIRMED, Status.REJECTED, Status.EXPIRED, Status.CANCELLED})
AVAILABILITY_EVERY_S = 0.25  # at most one availability message per this, per connection
_view_of = msgspec.json.Decoder(SeatMapView).decode


@contextlib.contextmanager
def counted(stream: str) -> Iterator[None]:
    """An open stream, counted in tickets_stream_connections while it lasts."""
    gauge = STREAM_CONNECTIONS.labels(stream)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def heartbeat() -> ServerSentEventMessage:
    """A comment line that keeps an idle stream (and the proxies on its way) open."""
    return ServerSentEventMessage(data=None, comment="heartbeat")


class StreamController(Controller):
    tags = ["live"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get(
        "/api/bookings/{booking_id:str}/events",
        summary="A booking's status as Server-Sent Events",
        description="One `status` event (the booking, as GET /api/bookings/{id} shows it) "
        "at once and after every change; the stream ends after CONFIRMED, REJECTED, "
        "EXPIRED or CANCELLED. A comment line every 15 s keeps it open. Same access as "
        "GET /api/bookings/{id}.",
    )
    async def booking_events(
        self,
        booking_id: FromPath[str],
        svc: InjectedServices,
        request: Request[object, object, State],
    ) -> ServerSentEvent:
        await booking_for(svc, request, booking_id)  # 401/404 before the stream starts
        return ServerSentEvent(_booking_stream(svc, booking_id))

    @get(
        "/api/events/{event_id:int}/stream",
        summary="An event's availability as Server-Sent Events",
        description="An `availability` event (free, held, sold, in total and per section) "
        "at once and whenever seats change, at most every 250 ms; its `id` is the seat "
        "map's version, and a client reconnecting with `Last-Event-ID` gets nothing until "
        "the map moves past it. A comment line every 15 s keeps it open.",
    )
    async def event_stream(
        self,
        event_id: EventIdParam,
        svc: InjectedServices,
        last_event_id: Annotated[
            str | None, HeaderParameter(name="Last-Event-ID", required=False)
        ] = None,
    ) -> ServerSentEvent:
        await svc.event_rules(event_id)  # 404 before the stream starts
        seen = int(last_event_id) if last_event_id and last_event_id.isdigit() else -1
        return ServerSentEvent(_availability_stream(svc, event_id, seen))


async def _booking_stream(svc: Services, booking_id: str) -> AsyncIterator[ServerSentEventMessage]:
    heartbeat_s = svc.settings.sse_heartbeat_s
    with counted("booking"), svc.hub.booking(booking_id) as watch:
        sent = None
        view = await find_booking(svc, booking_id)  # after subscribing: nothing missed
        while True:
            if view != sent:
                yield ServerSentEventMessage(data=msgspec.json.encode(view), event="status")
                sent = view
            if view.status in FINAL:
                return
            while not await watch.wait(heartbeat_s):
                yield heartbeat()
            # The record the worker just wrote, as a poll would read it; else read it.
            record = watch.take()
            pushed = view_of(booking_id, record) if record else None
            view = pushed or await find_booking(svc, booking_id)


async def _availability_stream(
    svc: Services, event_id: int, seen: int
) -> AsyncIterator[ServerSentEventMessage]:
    heartbeat_s = svc.settings.sse_heartbeat_s
    with counted("event"), svc.hub.availability(event_id) as watch:
        latest = svc.hub.latest(event_id) or await _availability(svc, event_id)
        sent_at = 0.0
        while True:
            version, data = latest
            if version > seen:
                # Changes closer together than this are sent as one, the latest.
                await asyncio.sleep(max(0.0, sent_at + AVAILABILITY_EVERY_S - time.monotonic()))
                version, data = svc.hub.latest(event_id) or latest
                yield ServerSentEventMessage(data=data, event="availability", id=version)
                seen, sent_at = version, time.monotonic()
            while not await watch.wait(heartbeat_s):
                yield heartbeat()
            latest = svc.hub.latest(event_id) or latest


async def _availability(svc: Services, event_id: int) -> tuple[int, bytes]:
    """The event's availability before any was published to this process: from the seat
    map the worker published (or the ledger)."""
    snapshot = await snapshot_of(svc, event_id)
    data = msgspec.json.encode(availability_of(_view_of(snapshot.body)))
    svc.hub.offer(event_id, snapshot.version, data)
    return svc.hub.latest(event_id) or (snapshot.version, data)
