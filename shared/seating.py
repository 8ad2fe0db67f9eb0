"""An event's seat layout: its sections, rows and prices, and the one rule that turns a seat
number into its label and back.

Seats are numbered 1..capacity, section after section, row after row, seat after seat, so
a seat's section, row and number follow from its seat number alone. An event created with
sections labels its seats `{section}-{row}-{number}`; an event created with a capacity is
general admission: one section `GA` in rows of 25 labelled `R{row}-{number}`, as before
seat maps existed. The API checks labels and the worker turns them into seat numbers with
this module; nothing else parses a label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated

import msgspec

GA = "GA"  # the section of an event created with a capacity; no other section has this name
GA_ROW = 25  # seats per row of general admission
MAX_SEATS = 1_000_000

SectionName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{1,16}$")]


class SectionSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A section as an organiser describes it (POST /api/events)."""

    name: SectionName
    rows: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
    seats_per_row: Annotated[int, msgspec.Meta(ge=1, le=1_000)]
    price_cents: Annotated[int, msgspec.Meta(ge=0, le=100_000_000)] | None = None


class Section(msgspec.Struct, frozen=True):
    """A section as the ledger keeps it: where its seat numbers start, how many it has."""

    name: str
    rows: int
    seats_per_row: int
    seats: int  # rows * seats_per_row, except general admission's last row may be short
    first_seat: int
    price_cents: int | None = None

    @property
    def last_seat(self) -> int:
        return self.first_seat + self.seats - 1

    def row_of(self, seat_no: int) -> int:
        return (seat_no - self.first_seat) // self.seats_per_row + 1

    def row_seats(self, row: int) -> range:
        """The seat numbers of one row, front seat first."""
        first = self.first_seat + (row - 1) * self.seats_per_row
        return range(first, min(first + self.seats_per_row, self.last_seat + 1))


_SEATED = re.compile(r"^([A-Za-z0-9]{1,16})-([1-9][0-9]{0,4})-([1-9][0-9]{0,3})$")
_GA_LABEL = re.compile(r"^R([1-9][0-9]{0,5})-([1-9][0-9]?)$")


class Layout:
    """The sections of one event, in order; immutable once the event exists."""

    def __init__(self, sections: Sequence[Section]) -> None:
        self.sections = tuple(sections)
        self.by_name = {s.name: s for s in self.sections}
        self.capacity = sum(s.seats for s in self.sections)
        self.general = len(self.sections) == 1 and self.sections[0].name == GA
        self.priced = all(s.price_cents is not None for s in self.sections)

    @classmethod
    def general_admission(cls, capacity: int) -> Layout:
        rows = (capacity + GA_ROW - 1) // GA_ROW
        return cls([Section(GA, rows, GA_ROW, capacity, 1)])

    @classmethod
    def from_specs(cls, specs: Sequence[SectionSpec]) -> Layout:
        sections, first = [], 1
        for spec in specs:
            seats = spec.rows * spec.seats_per_row
            sections.append(
                Section(spec.name, spec.rows, spec.seats_per_row, seats, first, spec.price_cents)
            )
            first += seats
        return cls(sections)

    def section_of(self, seat_no: int) -> Section:
        for section in self.sections:
            if seat_no <= section.last_seat:
                return section
        raise ValueError(f"seat {seat_no} is beyond the last seat {self.capacity}")

    def label(self, seat_no: int) -> str:
        if self.general:  # the worker labels thousands of these per batch
            return f"R{(seat_no - 1) // GA_ROW + 1}-{(seat_no - 1) % GA_ROW + 1}"
        section = self.section_of(seat_no)
        offset = seat_no - section.first_seat
        row, number = offset // section.seats_per_row + 1, offset % section.seats_per_row + 1
        return f"{section.name}-{row}-{number}"

    def labels(self, seat_nos: Iterable[int]) -> list[str]:
        """The labels of a booking's seats (the worker labels thousands per batch: the
        section is looked up only when the seats leave the previous one's)."""
        if self.general:
            return [self.label(n) for n in seat_nos]
        out: list[str] = []
        section = self.sections[0]
        for seat_no in seat_nos:
            if not section.first_seat <= seat_no <= section.last_seat:
                section = self.section_of(seat_no)
            row, number = divmod(seat_no - section.first_seat, section.seats_per_row)
            out.append(f"{section.name}-{row + 1}-{number + 1}")
        return out

    def seat_no(self, label: str) -> int | None:
        """The seat number of a label, or None when the event has no such seat."""
        if self.general:
            found = _GA_LABEL.match(label)
            if found is None:
                return None
            section, row, number = self.sections[0], int(found[1]), int(found[2])
        else:
            found = _SEATED.match(label)
            if found is None or found[1] not in self.by_name:
                return None
            section, row, number = self.by_name[found[1]], int(found[2]), int(found[3])
        if row > section.rows or number > section.seats_per_row:
            return None
        seat_no = section.first_seat + (row - 1) * section.seats_per_row + number - 1
        return seat_no if seat_no <= section.last_seat else None

    def seat_nos(self, labels: Iterable[str]) -> list[int]:
        """Seat numbers of labels the ledger wrote (each is known)."""
        out = []
        for label in labels:
            seat_no = self.seat_no(label)
            if seat_no is None:
                raise ValueError(f"{label!r} is no seat of this event")
            out.append(seat_no)
        return out

    def price_of(self, seat_nos: Iterable[int]) -> int | None:
        """What the seats cost together, or None when their sections have no price."""
        if not self.priced:
            return None
        if len(self.sections) == 1:
            return (self.sections[0].price_cents or 0) * sum(1 for _ in seat_nos)
        return sum(self.section_of(n).price_cents or 0 for n in seat_nos)

    def labelled(self) -> Iterator[tuple[int, str]]:
        """Every seat number with its label, in order (as `label` gives them, faster)."""
        for section, row, seats in self.rows():
            head = f"R{row}-" if self.general else f"{section.name}-{row}-"
            for number, seat_no in enumerate(seats, 1):
                yield seat_no, f"{head}{number}"

    def rows(self) -> Iterator[tuple[Section, int, range]]:
        """Every row of every section, in seat order."""
        for section in self.sections:
            for row in range(1, section.rows + 1):
                yield section, row, section.row_seats(row)


def runs(seat_nos: Iterable[int]) -> list[tuple[int, int]]:
    """Seat numbers as sorted runs of consecutive numbers, (first, last) each."""
    out: list[tuple[int, int]] = []
    for n in sorted(set(seat_nos)):
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


# A seat's state in a seat map: one byte per seat number.
FREE, HELD, SOLD = 0, 1, 2
_AS_TEXT = bytes.maketrans(b"\x00\x01\x02", b".hs")


class SectionView(msgspec.Struct):
    """One section of a published seat map: a string per row, a character per seat:
    `.` free, `h` held, `s` sold."""

    name: str
    price_cents: int | None
    free: int
    held: int
    sold: int
    rows: list[str]


class SeatMapView(msgspec.Struct):
    """The body of GET /api/events/{id}/seats."""

    event_id: int
    version: int
    free: int
    held: int
    sold: int
    sections: list[SectionView]


class SectionAvailability(msgspec.Struct):
    name: str
    free: int
    held: int
    sold: int


class Availability(msgspec.Struct):
    """The `availability` event of GET /api/events/{id}/stream: the seat map's counts."""

    event_id: int
    version: int
    free: int
    held: int
    sold: int
    sections: list[SectionAvailability]


def availability_of(view: SeatMapView) -> Availability:
    sections = [SectionAvailability(s.name, s.free, s.held, s.sold) for s in view.sections]
    return Availability(view.event_id, view.version, view.free, view.held, view.sold, sections)


def seat_map_view(
    event_id: int, version: int, layout: Layout, state: bytes | bytearray
) -> SeatMapView:
    """The seat map of `state` (index: seat number; FREE, HELD or SOLD)."""
    text = bytes(state).translate(_AS_TEXT).decode()
    sections = []
    for section in layout.sections:
        part = state[section.first_seat : section.last_seat + 1]
        held, sold = part.count(HELD), part.count(SOLD)
        rows = [text[r.start : r.stop] for r in map(section.row_seats, range(1, section.rows + 1))]
        free = section.seats - held - sold
        sections.append(SectionView(section.name, section.price_cents, free, held, sold, rows))
    return SeatMapView(
        event_id,
        version,
        sum(s.free for s in sections),
        sum(s.held for s in sections),
        sum(s.sold for s in sections),
        sections,
    )
