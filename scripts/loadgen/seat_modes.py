"""`--seats specific|together`: buyers who name their seats, or ask for seats side by side;
and the checks that each got what was asked or a clear refusal."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

SeatMode = Literal["specific", "together"]
SEAT_MODES: tuple[SeatMode, ...] = ("specific", "together")

DEMO_SECTION = "A"
DEMO_ROW = 20  # seats per row of the demo event's section
PAIR = 2  # seats a `specific` buyer names
GROUP = 4  # seats a `together` buyer asks for
LIVE = ("HELD", "CONFIRMED")
# A specific buyer who did not get the seats named must be told why: one of these.
REFUSALS = ("SEAT_TAKEN", "SOLD_OUT", "LIMIT_EXCEEDED")


def demo_sections(capacity: int) -> list[dict[str, Any]]:
    """The demo event of a seat mode: one section of rows of DEMO_ROW seats."""
    return [{"name": DEMO_SECTION, "rows": capacity // DEMO_ROW, "seats_per_row": DEMO_ROW}]


def usable_capacity(capacity: int) -> str | None:
    """Why a demo event of this capacity cannot have a seat map, or None."""
    if capacity % DEMO_ROW:
        return f"--capacity must be a multiple of {DEMO_ROW} with --seats (rows of {DEMO_ROW})"
    return None


@dataclass(frozen=True)
class SeatRequests:
    """What the buyers of one event ask for: labels are built the way the API reads them."""

    mode: SeatMode
    section: str
    seats_per_row: int
    general: bool  # general admission: labels R{row}-{n}, and no section to name
    rng: random.Random = field(default_factory=lambda: random.Random(16), compare=False)

    @classmethod
    def of(cls, mode: SeatMode, event: dict[str, Any]) -> SeatRequests:
        """The event's first section is the one fought over (its front row, for `specific`)."""
        first = event["sections"][0]
        return cls(mode, first["name"], first["seats_per_row"], first["name"] == "GA")

    def label(self, row: int, number: int) -> str:
        return f"R{row}-{number}" if self.general else f"{self.section}-{row}-{number}"

    def choice(self) -> dict[str, Any]:
        """The next buyer's seat choice, as body fields."""
        if self.mode == "specific":
            numbers = sorted(self.rng.sample(range(1, self.seats_per_row + 1), PAIR))
            return {"seats": [self.label(1, n) for n in numbers]}
        choice: dict[str, Any] = {"quantity": GROUP, "together": True}
        if not self.general:
            choice["section"] = self.section
        return choice

    def body(self, event_id: int, user_id: str) -> bytes:
        return json.dumps({"event_id": event_id, "user_id": user_id, **self.choice()}).encode()


@dataclass
class SeatCheck:
    """What the buyers got, against what they asked."""

    got_what_asked: int = 0  # named seats exactly, or a group side by side in one row
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"got_what_asked": self.got_what_asked, "refused": dict(self.refused)}


def check_seats(
    mode: SeatMode, asked: dict[str, list[str] | None], views: dict[str, dict[str, Any]]
) -> SeatCheck:
    """Every booking (by id: the seats it named, None for a group) against its final view:
    no live seat twice; named seats given exactly or refused with a reason; each group in
    one row, side by side."""
    out = SeatCheck()
    owners: dict[str, str] = {}
    for booking_id, view in views.items():
        seats: list[str] = view.get("seats") or []
        if view["status"] == "REJECTED":
            out.refused[view.get("reason") or "UNKNOWN"] += 1
            if mode == "specific" and view.get("reason") not in REFUSALS:
                out.failures.append(f"booking {booking_id} refused with {view.get('reason')}")
            continue
        if view["status"] in LIVE:
            for seat in seats:
                if seat in owners:
                    out.failures.append(f"seat {seat} held or sold twice")
                owners[seat] = booking_id
        named = asked.get(booking_id)
        if named is not None and sorted(seats) != sorted(named):
            out.failures.append(f"booking {booking_id} named {named} but got {seats}")
        elif named is None and not side_by_side(seats):
            out.failures.append(f"booking {booking_id} asked for seats together, got {seats}")
        else:
            out.got_what_asked += 1
    return out


def side_by_side(labels: list[str]) -> bool:
    """One row of one section, consecutive seat numbers."""
    if not labels:
        return False
    places = [label.rsplit("-", 1) for label in labels]
    numbers = sorted(int(number) for _, number in places)
    one_row = len({row for row, _ in places}) == 1
    return one_row and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
