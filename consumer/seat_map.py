"""The worker's picture of an event's seats: which are free, held or sold, and where a group
of buyers fits. It chooses seats; PostgreSQL's guarded UPDATE has the final word.

The map is kept between batches and trusted only while the event's `seat_version` (bumped
by every transaction that changes a seat) is the one it was last in line with: a worker
that takes an event over, or follows a failed transaction, loads it again from the ledger.
Every choice is made under the event's row lock, so no other writer moves a seat meanwhile.

After a batch the worker publishes the map for `GET /api/events/{id}/seats` (at most every
`PUBLISH_EVERY_S` per event, and once more when it goes quiet), so readers never scan the
seats table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import msgspec
from psycopg import AsyncCursor
from redis.asyncio import Redis

from shared.contracts import BookingRequested
from shared.db import queries
from shared.keys import RedisKeys
from shared.seating import (
    FREE,
    HELD,
    SOLD,
    Layout,
    SeatMapView,
    Section,
    availability_of,
    seat_map_view,
)

PUBLISH_EVERY_S = 0.25
_FREE_RUN = re.compile(b"\x00+")


class _Rows:
    """Free runs per row of one section, worked out when a `together` request first asks,
    and again for a row only after it changed."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.runs: list[list[tuple[int, int]] | None] = [None] * section.rows
        # Rows before this one have no free run of that length (runs only shrink until a
        # seat is given back, which resets it).
        self.first_fit: dict[int, int] = {}


class SeatMap:
    def __init__(self, event_id: int, layout: Layout, version: int) -> None:
        self.event_id = event_id
        self.layout = layout
        self.version = version
        self.state = bytearray(layout.capacity + 1)
        self.state[0] = SOLD  # there is no seat 0
        self.published_at = 0.0
        self.dirty = True
        self._low = 1  # no free seat below this one
        self._rows: dict[str, _Rows] = {}

    @classmethod
    async def load(
        cls, cur: AsyncCursor[Any], event_id: int, layout: Layout, version: int
    ) -> SeatMap:
        seat_map = cls(event_id, layout, version)
        await cur.execute(queries.taken_seats, {"event_id": event_id})
        for row in await cur.fetchall():
            seat_map.state[row["seat_no"]] = SOLD if row["sold"] else HELD
        return seat_map

    # --- changes

    def mark(self, seat_nos: Sequence[int], state: int) -> None:
        for seat_no in seat_nos:
            self.state[seat_no] = state
        self._changed(seat_nos, freed=state == FREE)

    def take(self, seat_nos: Sequence[int], state: int) -> bool:
        """All of these seats, if every one is free; else none."""
        if any(self.state[n] != FREE for n in seat_nos):
            return False
        self.mark(seat_nos, state)
        return True

    def _changed(self, seat_nos: Sequence[int], freed: bool) -> None:
        self.dirty = True
        if freed and seat_nos:
            self._low = min(self._low, min(seat_nos))
        if not self._rows:
            return
        for seat_no in seat_nos:
            section = self.layout.section_of(seat_no)
            rows = self._rows.get(section.name)
            if rows is not None:
                row = section.row_of(seat_no)
                rows.runs[row - 1] = None
                if freed:
                    rows.first_fit = {q: min(r, row) for q, r in rows.first_fit.items()}

    # --- choices (nothing is marked: the caller takes what it chose)

    def lowest_free(self, count: int, section: Section | None = None) -> list[int] | None:
        """The `count` lowest free seats (of one section, or of the event), or None."""
        first, last = (
            (section.first_seat, section.last_seat) if section else (1, len(self.state) - 1)
        )
        at = max(first, self._low) if section is None else first
        state = self.state
        at = state.find(FREE, at, last + 1)
        if at < 0:
            return None
        if at + count <= last + 1 and state.count(FREE, at, at + count) == count:  # one run
            if section is None:
                self._low = at
            return list(range(at, at + count))
        found: list[int] = []
        while len(found) < count:
            at = state.find(FREE, at, last + 1)
            if at < 0:
                return None
            found.append(at)
            at += 1
        if section is None:
            self._low = found[0]
        return found

    def together(self, section: Section, count: int) -> list[int] | None:
        """`count` adjacent seats in one row of the section: the row nearest the front, and
        the leftmost place in it, that leaves no single seat alone between taken ones (or a
        row's end); only when there is no such place, the first that does. None: no row has
        `count` free seats side by side."""
        rows = self._rows.get(section.name)
        if rows is None:
            rows = self._rows[section.name] = _Rows(section)
        start = rows.first_fit.get(count, 1)
        fallback: list[int] | None = None
        fitted = False
        for row in range(start, section.rows + 1):
            runs = rows.runs[row - 1]
            if runs is None:
                runs = rows.runs[row - 1] = self._runs(section, row)
            for first, length in runs:
                if length < count:
                    continue
                if not fitted:
                    fitted = True
                    rows.first_fit[count] = row
                if length - count != 1:
                    return list(range(first, first + count))
                if fallback is None:
                    fallback = list(range(first, first + count))
        if not fitted:
            rows.first_fit[count] = section.rows + 1
        return fallback

    def _runs(self, section: Section, row: int) -> list[tuple[int, int]]:
        seats = section.row_seats(row)
        line = bytes(self.state[seats.start : seats.stop])
        return [(seats.start + m.start(), m.end() - m.start()) for m in _FREE_RUN.finditer(line)]

    # --- the published map

    def view(self) -> SeatMapView:
        return seat_map_view(self.event_id, self.version, self.layout, self.state)


class Rendered(NamedTuple):
    event_id: int
    version: int
    body: bytes  # the seat map (GET /api/events/{id}/seats)
    availability: bytes  # its counts, for the event's stream


class SeatMaps:
    """The maps of the events this worker decides, and their publication."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._maps: dict[int, SeatMap] = {}

    async def get(
        self, cur: AsyncCursor[Any], event_id: int, layout: Layout, version: int
    ) -> SeatMap:
        """The event's map, loaded again unless it is in line with `version`."""
        seat_map = self._maps.get(event_id)
        if seat_map is None or seat_map.version != version:
            seat_map = self._maps[event_id] = await SeatMap.load(cur, event_id, layout, version)
        return seat_map

    def forget(self, event_id: int) -> None:
        """Its transaction failed: the map may hold choices that were never committed."""
        self._maps.pop(event_id, None)

    def render(self, event_ids: Iterable[int] | None = None, force: bool = False) -> list[Rendered]:
        """The maps (of these events, or all) changed since they were last rendered and not
        rendered too recently (`force`: however recently), as published. Call it only
        between transactions: a map mid-transaction holds choices not yet committed."""
        now = time.monotonic()
        chosen = (
            self._maps.values()
            if event_ids is None
            else [m for e in event_ids if (m := self._maps.get(e)) is not None]
        )
        out = []
        for seat_map in chosen:
            if seat_map.dirty and (force or now - seat_map.published_at >= PUBLISH_EVERY_S):
                view = seat_map.view()
                body, counts = msgspec.json.encode(view), msgspec.json.encode(availability_of(view))
                out.append(Rendered(seat_map.event_id, seat_map.version, body, counts))
                seat_map.dirty, seat_map.published_at = False, now
        return out

    async def publish(self, rendered: Sequence[Rendered]) -> None:
        """Write each map where GET /api/events/{id}/seats reads it, with its version, and
        tell the event streams its counts."""
        if not rendered:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for one in rendered:
                pipe.hset(
                    self._keys.seat_map(one.event_id),
                    mapping={"version": one.version, "body": one.body},
                )
                pipe.publish(self._keys.availability_changes, one.availability)
            await pipe.execute()


class SeatChoice(NamedTuple):
    """What a booking request asked for, checked against the event's layout."""

    seats: tuple[int, ...] | None = None  # these seats, all or none
    section: Section | None = None  # else seats in this section (None: anywhere)
    together: bool = False  # side by side in one row


ANYWHERE = SeatChoice()
INVALID = SeatChoice(together=True)  # a request the API would have refused


def seat_choice(request: BookingRequested, layout: Layout) -> SeatChoice:
    """The request's choice, or INVALID when it names seats or a section the event does not
    have (the API refuses those; only a forged publish gets here)."""
    if request.seats is None and request.section is None and not request.together:
        return ANYWHERE
    if request.seats is not None:
        seats = request.seats
        if (
            request.section is not None
            or request.together
            or len(seats) != request.quantity
            or len(set(seats)) != len(seats)
            or not all(1 <= n <= layout.capacity for n in seats)
        ):
            return INVALID
        return SeatChoice(seats=seats)
    section = layout.by_name.get(request.section) if request.section else None
    if section is None and (request.section is not None or not layout.general):
        return INVALID  # an unknown section, or `together` without one where there are several
    section = section or layout.sections[0]
    if request.together and request.quantity > section.seats_per_row:
        return INVALID
    return SeatChoice(section=section, together=request.together)


def place(seat_map: SeatMap, choice: SeatChoice, quantity: int) -> list[int] | None:
    """Seats for a request that did not name them, or None when there are none to give."""
    if choice.together:
        assert choice.section is not None
        return seat_map.together(choice.section, quantity)
    return seat_map.lowest_free(quantity, choice.section)
