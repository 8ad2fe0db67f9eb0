"""Events: created by an admin with their seats, read by anyone, audited by an admin."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Annotated

import msgspec
import redis.exceptions
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter

from api.auth import admin_only
from api.context import InjectedServices, Services
from shared.audit import AuditReport, audit_event
from shared.db import queries
from shared.errors import InvalidRequest, NotFound
from shared.seating import GA, MAX_SEATS, Layout, SectionSpec
from shared.venue import OnSale, create_event

log = logging.getLogger(__name__)

EventIdParam = Annotated[int, PathParameter(ge=1, le=2**62, description="event id")]


class EventCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    # General admission: this many seats, no seat map. Or `sections` (capacity: their sum).
    capacity: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEATS)] | None = None
    sections: Annotated[list[SectionSpec], msgspec.Meta(min_length=1, max_length=100)] | None = None
    per_user_limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_SEATS)] = 10
    # 0: bookings are CONFIRMED when decided; above 0: HELD until paid, for this long.
    hold_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 0
    # With `queue`, on sale only to buyers the on-sale queue admitted, from `opens_at`
    # (default: at once), those who joined before it in one random order. Only the queue
    # enforces `opens_at`, so it needs `queue`. `queue_pow`: each joiner first solves an
    # ALTCHA proof of work this hard (its largest number).
    opens_at: dt.datetime | None = None
    queue: bool = False
    queue_pow: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0

    def on_sale(self) -> OnSale:
        if self.queue_pow and not self.queue:
            raise InvalidRequest("queue_pow needs queue: true")
        if self.opens_at is not None and not self.queue:
            raise InvalidRequest("opens_at needs queue: true (the queue is what opens the sale)")
        opens_at = self.opens_at
        if opens_at is not None and opens_at.tzinfo is None:
            raise InvalidRequest("opens_at needs a time zone (e.g. 2030-01-01T18:00:00Z)")
        return OnSale(opens_at, self.queue, self.queue_pow)

    def layout(self) -> Layout:
        """The seats this event is made of, or InvalidRequest saying what is wrong."""
        if (self.capacity is None) == (self.sections is None):
            raise InvalidRequest("give either a capacity or sections, not both")
        if self.capacity is not None:
            return Layout.general_admission(self.capacity)
        assert self.sections is not None
        names = [s.name for s in self.sections]
        if len(set(names)) != len(names):
            raise InvalidRequest("each section needs a name of its own")
        if GA in names:
            raise InvalidRequest(f"{GA} is general admission's name; name the section otherwise")
        seats = sum(s.rows * s.seats_per_row for s in self.sections)
        if seats > MAX_SEATS:
            raise InvalidRequest(f"{seats:,} seats is more than {MAX_SEATS:,}")
        return Layout.from_specs(self.sections)


class SectionSummary(msgspec.Struct):
    name: str
    rows: int
    seats_per_row: int
    seats: int
    price_cents: int | None


class EventView(msgspec.Struct):
    id: int
    name: str
    capacity: int
    per_user_limit: int
    hold_seconds: int
    available: int
    sold: int
    held: int
    sections: list[SectionSummary]
    opens_at: dt.datetime | None = None
    queue: bool = False


def summaries(layout: Layout) -> list[SectionSummary]:
    return [
        SectionSummary(s.name, s.rows, s.seats_per_row, s.seats, s.price_cents)
        for s in layout.sections
    ]


def services(state: State) -> Services:
    """Dependency: the handles the lifespan opened."""
    svc: Services = state.services
    return svc


async def get_event_view(svc: Services, event_id: int) -> EventView:
    async with svc.pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(queries.get_event, {"event_id": event_id})
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"event {event_id} does not exist")
    available = row["capacity"] - row["sold"] - row["held"]
    try:
        counted = await svc.inventory.available(event_id)
    except redis.exceptions.RedisError:
        counted = None
    if counted is not None:
        available = max(counted, 0)  # what the gate will still admit
    rules = await svc.event_rules(event_id)
    return EventView(
        row["id"],
        row["name"],
        row["capacity"],
        row["per_user_limit"],
        row["hold_seconds"],
        available,
        row["sold"],
        row["held"],
        summaries(rules.layout),
        row["opens_at"],
        row["queue"],
    )


async def open_queue(svc: Services, event_id: int, opens_at: dt.datetime | None) -> None:
    """The event's queue in Redis; if Redis fails now, the queue is missing, which fails
    closed (nobody admitted) until an admin opens it (POST /api/events/{id}/queue/open)."""
    opens_at_ms = int(opens_at.timestamp() * 1000) if opens_at else 0
    try:
        await svc.queues.create(event_id, opens_at_ms, svc.settings.queue_admit_per_s)
    except redis.exceptions.RedisError as exc:
        log.warning("event %s created but its queue was not: %r", event_id, exc)


async def audit_or_404(svc: Services, event_id: int) -> AuditReport:
    report = await audit_event(svc.pool, svc.inventory, event_id)
    if report is None:
        raise NotFound(f"event {event_id} does not exist")
    return report


class EventController(Controller):
    path = "/api/events"
    tags = ["events"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post(
        "/",
        guards=[admin_only],
        status_code=201,
        summary="Create an event and its seats",
        description="Either `capacity` (general admission: seats R1-1, R1-2, ... in rows of "
        "25) or `sections`, each `{name, rows, seats_per_row, price_cents}`, seats labelled "
        "`{section}-{row}-{number}`; up to 1,000,000 seats, all created before the answer.",
    )
    async def create(self, data: JSONBody[EventCreate], svc: InjectedServices) -> EventView:
        layout = data.layout()
        sale = data.on_sale()
        started = time.monotonic()
        async with svc.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            row = await create_event(
                cur, data.name, data.per_user_limit, data.hold_seconds, layout, sale
            )
        log.info(
            "event %s created with %d seats in %.2f s",
            row["id"],
            layout.capacity,
            time.monotonic() - started,
            extra={"event_id": row["id"]},
        )
        try:
            await svc.inventory.open(row["id"], layout.capacity)
        except redis.exceptions.RedisError as exc:
            # The worker rebuilds a missing counter from PostgreSQL before admitting anyone.
            log.warning("event %s created but its counter was not opened: %r", row["id"], exc)
        if sale.queue:
            await open_queue(svc, row["id"], sale.opens_at)
        return EventView(
            row["id"],
            row["name"],
            row["capacity"],
            row["per_user_limit"],
            row["hold_seconds"],
            layout.capacity,
            0,
            0,
            summaries(layout),
            row["opens_at"],
            row["queue"],
        )

    @get("/{event_id:int}", summary="An event with its live availability")
    async def read(self, event_id: EventIdParam, svc: InjectedServices) -> EventView:
        return await get_event_view(svc, event_id)

    @get("/{event_id:int}/audit", guards=[admin_only], summary="The lie detector")
    async def audit(self, event_id: EventIdParam, svc: InjectedServices) -> AuditReport:
        return await audit_or_404(svc, event_id)
