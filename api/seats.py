"""Seats: what a booking request may ask for (named seats, or a section, together or not),
checked against the event's layout before anything is published; and the seat map, served
from the snapshot the worker publishes, with an ETag."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import MediaType

from api.context import InjectedServices, Services
from api.events import EventIdParam, services
from api.seat_snapshots import Snapshot, etag
from shared.db import fetch_all, fetch_one, queries
from shared.errors import InvalidRequest, LimitExceeded, NotFound, Unsatisfiable
from shared.rules import EventRules
from shared.seating import HELD, SOLD, seat_map_view


@dataclass(frozen=True, slots=True)
class Choice:
    """A booking request's seat choice, as published (seat numbers, not labels)."""

    quantity: int
    seats: tuple[int, ...] | None = None
    section: str | None = None
    together: bool = False

    def fingerprint(self) -> tuple[object, ...]:
        """What tells two requests' choices apart (nothing for a plain quantity)."""
        if self.seats is None and self.section is None and not self.together:
            return ()
        return (self.seats, self.section, self.together)


def choose(
    rules: EventRules,
    quantity: int | None,
    labels: list[str] | None,
    section: str | None,
    together: bool,
) -> Choice:
    """The request's choice, or InvalidRequest/LimitExceeded/Unsatisfiable saying what is
    wrong with it."""
    layout, event_id = rules.layout, rules.id
    if labels is not None:
        if section is not None or together:
            raise InvalidRequest("name seats, or a section; not both")
        if quantity is not None and quantity != len(labels):
            raise InvalidRequest(f"quantity {quantity} but {len(labels)} seats named")
        seen: set[str] = set()
        seat_nos = []
        for label in labels:
            if label in seen:
                raise InvalidRequest(f"seat {label} is named twice")
            seen.add(label)
            seat_no = layout.seat_no(label)
            if seat_no is None:
                raise InvalidRequest(f"event {event_id} has no seat {label!r}")
            seat_nos.append(seat_no)
        _within_limit(rules, len(seat_nos))
        return Choice(len(seat_nos), seats=tuple(seat_nos))
    wanted = 1 if quantity is None else quantity
    _within_limit(rules, wanted)
    if section is None and not together:
        return Choice(wanted)
    if section is not None and section not in layout.by_name:
        names = ", ".join(layout.by_name)
        raise InvalidRequest(f"event {event_id} has no section {section!r} (it has {names})")
    if section is None and not layout.general:
        raise InvalidRequest("seats together need a section: name one")
    chosen = layout.by_name[section] if section else layout.sections[0]
    if together and wanted > chosen.seats_per_row:
        raise Unsatisfiable(
            f"{wanted} seats together do not fit in section {chosen.name}, whose rows have "
            f"{chosen.seats_per_row} seats"
        )
    return Choice(wanted, section=section, together=together)


def _within_limit(rules: EventRules, quantity: int) -> None:
    if quantity > rules.per_user_limit:
        raise LimitExceeded(
            f"quantity {quantity} is above the per-user limit of {rules.per_user_limit}"
        )


class SeatMapController(Controller):
    path = "/api/events"
    tags = ["events"]
    dependencies = {"svc": Provide(services, sync_to_thread=False)}

    @get(
        "/{event_id:int}/seats",
        summary="The seat map: every seat free, held or sold",
        description="Per section, one string per row, one character per seat: `.` free, "
        "`h` held, `s` sold (seat n of a row is its n-th character). Send the `ETag` back in "
        "`If-None-Match` to get 304 while nothing changed. Refreshed by the worker at most "
        "every 250 ms while seats change: a seat shown free may be gone by the time a "
        "booking for it is decided (it is then REJECTED with SEAT_TAKEN).",
    )
    async def seat_map(
        self, event_id: EventIdParam, svc: InjectedServices, request: Request[object, object, State]
    ) -> Response[bytes]:
        if_none_match = request.headers.get("if-none-match")
        snapshot = await snapshot_of(svc, event_id)
        headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
        if _matches(if_none_match, snapshot.etag):
            return Response(b"", status_code=304, headers=headers)
        return Response(snapshot.body, media_type=MediaType.JSON, headers=headers)


async def snapshot_of(svc: Services, event_id: int) -> Snapshot:
    """The event's seat map: as the worker last published it, else from the ledger."""
    snapshot = await svc.seat_maps.get(event_id)
    return snapshot if snapshot is not None else await _from_ledger(svc, event_id)


def _matches(if_none_match: str | None, current: str) -> bool:
    """RFC 9110's weak comparison of If-None-Match against the current ETag."""
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or current in tags


async def _from_ledger(svc: Services, event_id: int) -> Snapshot:
    """The seat map read from PostgreSQL: only while the worker has published none."""
    row = await fetch_one(svc.pool, queries.get_event, {"event_id": event_id})
    if row is None:
        raise NotFound(f"event {event_id} does not exist")
    rules = await svc.event_rules(event_id)
    state = bytearray(rules.layout.capacity + 1)
    for taken in await fetch_all(svc.pool, queries.taken_seats, {"event_id": event_id}):
        state[taken["seat_no"]] = SOLD if taken["sold"] else HELD
    version = int(row["seat_version"])
    view = seat_map_view(event_id, version, rules.layout, state)
    return Snapshot(version, msgspec.json.encode(view), etag(event_id, version))
