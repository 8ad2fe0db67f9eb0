"""Events: created by an admin with their seats, read by anyone, audited by an admin."""

from __future__ import annotations

import logging
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
from shared.errors import NotFound

log = logging.getLogger(__name__)

EventIdParam = Annotated[int, PathParameter(ge=1, le=2**62, description="event id")]


class EventCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    per_user_limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10
    # 0: bookings are CONFIRMED when decided; above 0: HELD until paid, for this long.
    hold_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 0


class EventView(msgspec.Struct):
    id: int
    name: str
    capacity: int
    per_user_limit: int
    hold_seconds: int
    available: int
    sold: int
    held: int


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
    return EventView(
        row["id"],
        row["name"],
        row["capacity"],
        row["per_user_limit"],
        row["hold_seconds"],
        available,
        row["sold"],
        row["held"],
    )


async def audit_or_404(svc: Services, event_id: int) -> AuditReport:
    report = await audit_event(svc.pool, svc.inventory, event_id)
    if report is None:
        raise NotFound(f"event {event_id} does not exist")
    return report


class EventController(Controller):
    path = "/api/events"
    tags = ["events"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @post("/", guards=[admin_only], status_code=201, summary="Create an event and its seats")
    async def create(self, data: JSONBody[EventCreate], svc: InjectedServices) -> EventView:
        async with svc.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(queries.create_event, msgspec.structs.asdict(data))
            row = await cur.fetchone()
            assert row is not None
            await cur.execute(
                queries.create_seats, {"event_id": row["id"], "capacity": data.capacity}
            )
        try:
            await svc.inventory.open(row["id"], data.capacity)
        except redis.exceptions.RedisError as exc:
            # The worker rebuilds a missing counter from PostgreSQL before admitting anyone.
            log.warning("event %s created but its counter was not opened: %r", row["id"], exc)
        return EventView(
            row["id"],
            row["name"],
            row["capacity"],
            row["per_user_limit"],
            row["hold_seconds"],
            data.capacity,
            0,
            0,
        )

    @get("/{event_id:int}", summary="An event with its live availability")
    async def read(self, event_id: EventIdParam, svc: InjectedServices) -> EventView:
        return await get_event_view(svc, event_id)

    @get("/{event_id:int}/audit", guards=[admin_only], summary="The lie detector")
    async def audit(self, event_id: EventIdParam, svc: InjectedServices) -> AuditReport:
        return await audit_or_404(svc, event_id)
