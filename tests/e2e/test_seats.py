"""Seat maps and choosing seats through the real processes: named seats fought over by
thousands, groups seated together, the seat map with its ETag, and bad choices refused
before anything is published."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import psycopg
import pytest

from scripts.loadgen.client import Client, local_target
from scripts.loadgen.seat_modes import side_by_side
from scripts.pipeline import Pipeline
from scripts.waiting import eventually
from tests.integration.conftest import topic_size
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

FRONT_ROW = 200
PRICE = 12_500


async def test_2000_buyers_fight_for_200_front_row_seats(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    """Each buyer names 2 seats of the same front row: each seat is sold once, every winner
    gets exactly the seats named, every loser is SEAT_TAKEN by a seat a winner holds."""
    section = {"name": "A", "rows": 10, "seats_per_row": FRONT_ROW, "price_cents": PRICE}
    event = await sale.create_event(sections=[section], per_user_limit=2)
    rng = random.Random(16)
    wanted = {
        f"fan-{i}": [f"A-1-{n}" for n in sorted(rng.sample(range(1, FRONT_ROW + 1), 2))]
        for i in range(2000)
    }
    accepted = await _burst(pipeline, event, {b: {"seats": s} for b, s in wanted.items()})
    assert len(accepted) == len(wanted)  # never sold out: only row 1 is asked for
    rows = await eventually(lambda: _decided(pipeline, accepted), "all decided", 60, 0.1)

    winners = {b: row for b, row in rows.items() if row[0] == "CONFIRMED"}
    losers = {b: row for b, row in rows.items() if row[0] != "CONFIRMED"}
    assert winners and losers
    for buyer, (_, _, seats, price) in winners.items():
        assert sorted(seats) == sorted(wanted[buyer]) and price == 2 * PRICE
    owner = _owners({b: seats for b, (_, _, seats, _) in winners.items()})  # each seat once
    assert {(status, reason) for status, reason, _, _ in losers.values()} == {
        ("REJECTED", "SEAT_TAKEN")
    }
    for buyer in losers:
        assert any(seat in owner for seat in wanted[buyer]), buyer  # really taken
    in_ledger = await _seat_owners(pipeline, event)
    assert in_ledger == {seat: accepted[buyer] for seat, buyer in owner.items()}

    report = await sale.wait_clean(event)
    assert report["verdict"] == "CLEAN", report
    assert (report["sold"], report["seats_assigned"]) == (len(owner), len(owner))

    # The seat map shows exactly these seats sold, and nothing else.
    seat_map = await _seat_map(sale, event, sold=len(owner))
    [front, *rest] = seat_map["sections"][0]["rows"]
    assert {f"A-1-{i + 1}" for i, c in enumerate(front) if c == "s"} == set(owner)
    assert all(set(row) == {"."} for row in rest)
    assert seat_map["sections"][0]["price_cents"] == PRICE


async def test_500_groups_of_4_sit_together(sale: SaleClient, pipeline: Pipeline) -> None:
    """Groups asking for 4 together in a 2,000-seat section fill it with no seat lost: every
    group in one row, side by side, no single seat left alone."""
    section = {"name": "B", "rows": 20, "seats_per_row": 100, "price_cents": PRICE}
    event = await sale.create_event(sections=[section], per_user_limit=4)
    groups = {f"group-{i}": {"quantity": 4, "section": "B", "together": True} for i in range(510)}
    accepted = await _burst(pipeline, event, groups)
    rows = await eventually(lambda: _decided(pipeline, accepted), "all decided", 60, 0.1)
    outcomes = Counter((status, reason) for status, reason, _, _ in rows.values())
    refused_at_api = len(groups) - len(accepted)  # 409 sold out, once the gate knew
    assert outcomes[("CONFIRMED", None)] == 500, outcomes
    assert outcomes[("REJECTED", "SOLD_OUT")] + refused_at_api == 10, outcomes

    placed = {b: seats for b, (status, _, seats, _) in rows.items() if status == "CONFIRMED"}
    for seats in placed.values():
        assert side_by_side(seats), seats
    assert len(_owners(placed)) == 2000

    report = await sale.wait_clean(event)
    assert report["verdict"] == "CLEAN", report
    seat_map = await _seat_map(sale, event, sold=2000)
    assert all(set(row) == {"s"} for row in seat_map["sections"][0]["rows"])


async def test_together_leaves_no_single_seat_alone_when_it_can(sale: SaleClient) -> None:
    """Row 1 has free runs of 5 and 4 seats: a group of 4 takes the 4 (the 5 would leave one
    seat alone); the next group goes to row 2 rather than strand a seat in row 1; only when
    nothing else is left does a group accept leaving one."""
    section = {"name": "C", "rows": 2, "seats_per_row": 10}
    event = await sale.create_event(sections=[section], per_user_limit=10)

    async def seated(buyer: str, **choice: Any) -> list[str]:
        response = await sale.book(event, buyer, **choice)
        assert response.status_code == 202, response.text
        bid = response.json()["booking_id"]
        view = (await sale.wait_decided([bid]))[bid]
        assert view["status"] == "CONFIRMED", view
        return list(view["seats"])

    assert await seated("single", quantity=None, seats=["C-1-6"]) == ["C-1-6"]
    assert await seated("g1", quantity=4, section="C", together=True) == _labels("C", 1, 7, 10)
    assert await seated("g2", quantity=4, section="C", together=True) == _labels("C", 2, 1, 4)
    assert await seated("g3", quantity=6, section="C", together=True) == _labels("C", 2, 5, 10)
    # Only row 1's run of 5 is left: taking 4 of it strands one seat, and that is the only way.
    assert await seated("g4", quantity=4, section="C", together=True) == _labels("C", 1, 1, 4)
    report = await sale.wait_clean(event)
    assert (report["verdict"], report["sold"]) == ("CLEAN", 19)


async def test_the_seat_map_answers_304_until_a_seat_changes(sale: SaleClient) -> None:
    section = {"name": "D", "rows": 3, "seats_per_row": 8, "price_cents": 5_000}
    event = await sale.create_event(sections=[section])
    first = await sale.http.get(f"/api/events/{event}/seats")
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    body = first.json()
    assert (body["free"], body["sold"], body["sections"][0]["rows"]) == (24, 0, ["." * 8] * 3)
    again = await sale.http.get(f"/api/events/{event}/seats", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")

    response = await sale.book(event, "someone", quantity=None, seats=["D-2-3", "D-2-4"])
    bid = response.json()["booking_id"]
    await sale.wait_decided([bid])

    async def changed() -> dict[str, Any] | None:
        got = await sale.http.get(f"/api/events/{event}/seats", headers={"If-None-Match": etag})
        return dict(got.json()) if got.status_code == 200 else None

    body = await eventually(changed, "a new seat map", 10, 0.05)
    assert body["sections"][0]["rows"] == ["........", "..ss....", "........"]
    assert (body["free"], body["sold"]) == (22, 2)
    unknown = await sale.http.get("/api/events/987654321/seats")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("choice", "status", "detail"),
    [
        ({"seats": ["E-1-1", "E-9-1"]}, 400, "has no seat 'E-9-1'"),
        ({"seats": ["E-1-1", "E-1-1"]}, 400, "seat E-1-1 is named twice"),
        ({"seats": [f"E-1-{n}" for n in range(1, 6)]}, 422, "above the per-user limit of 4"),
        ({"quantity": 2, "section": "Z"}, 400, "has no section 'Z' (it has E, F)"),
        ({"quantity": 4, "section": "F", "together": True}, 422, "do not fit in section F"),
        ({"quantity": 3, "seats": ["E-1-1", "E-1-2"]}, 400, "quantity 3 but 2 seats named"),
        ({"seats": ["E-1-1"], "section": "E"}, 400, "name seats, or a section"),
        ({"quantity": 2, "together": True}, 400, "seats together need a section"),
        ({"seats": []}, 400, "seats"),
        ({"seats": "E-1-1"}, 400, "seats"),
    ],
)
async def test_bad_seat_choices_are_refused_and_nothing_is_published(
    sale: SaleClient, pipeline: Pipeline, choice: dict[str, Any], status: int, detail: str
) -> None:
    sections = [
        {"name": "E", "rows": 2, "seats_per_row": 10},
        {"name": "F", "rows": 2, "seats_per_row": 3},
    ]
    event = await sale.create_event(sections=sections, per_user_limit=4)
    async with topic_size(pipeline.settings) as published:
        before = await published()
        response = await sale.http.post(
            "/api/bookings", json={"event_id": event, "user_id": "picky", **choice}
        )
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert detail in response.json()["detail"]
        assert await published() == before


async def _burst(
    pipeline: Pipeline, event: int, choices: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """Every buyer's request at once, through the load generator's client; the booking ids
    of those accepted (202), by buyer."""
    fast = Client(local_target(pipeline.url), connections=64)
    answers: dict[str, tuple[int, bytes]] = {}

    async def book(buyer: str) -> None:
        body = json.dumps({"event_id": event, "user_id": buyer, **choices[buyer]}).encode()
        answers[buyer] = await fast.request("POST", "/api/bookings", body)

    try:
        await fast.map(list(choices), book)
    finally:
        fast.close()
    assert {status for status, _ in answers.values()} <= {202, 409}, Counter(
        status for status, _ in answers.values()
    )
    return {b: json.loads(raw)["booking_id"] for b, (status, raw) in answers.items()
            if status == 202}  # fmt: skip


Row = tuple[str, str | None, list[str], int | None]


async def _decided(pipeline: Pipeline, accepted: dict[str, str]) -> dict[str, Row] | None:
    """Every accepted booking as the ledger holds it (status, reason, seats, price), by
    buyer, once all are decided."""
    async with await psycopg.AsyncConnection.connect(pipeline.settings.database_url) as conn:
        cur = await conn.execute(
            "SELECT booking_id::text, status, reason, seats, price_cents FROM bookings"
            " WHERE booking_id = ANY(%s::uuid[])",
            [list(accepted.values())],
        )
        found = {bid: (status, reason, seats, price) for bid, status, reason, seats, price
                 in await cur.fetchall()}  # fmt: skip
    if len(found) < len(accepted):
        return None
    return {buyer: found[bid] for buyer, bid in accepted.items()}


async def _seat_owners(pipeline: Pipeline, event: int) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(pipeline.settings.database_url) as conn:
        cur = await conn.execute(
            "SELECT label, booking_id::text FROM seats"
            " WHERE event_id = %s AND booking_id IS NOT NULL",
            [event],
        )
        return {label: bid for label, bid in await cur.fetchall()}


def _owners(seats_by_buyer: dict[str, list[str]]) -> dict[str, str]:
    """Who has each seat, asserting that nobody shares one."""
    owner: dict[str, str] = {}
    for buyer, seats in seats_by_buyer.items():
        for seat in seats:
            assert seat not in owner, f"{seat} sold to {owner[seat]} and {buyer}"
            owner[seat] = buyer
    return owner


def _labels(section: str, row: int, first: int, last: int) -> list[str]:
    return [f"{section}-{row}-{n}" for n in range(first, last + 1)]


async def _seat_map(sale: SaleClient, event: int, sold: int) -> dict[str, Any]:
    """The published seat map, once the worker has refreshed it to `sold` seats sold."""

    async def current() -> dict[str, Any] | None:
        body = (await sale.http.get(f"/api/events/{event}/seats")).json()
        return dict(body) if body["sold"] == sold else None

    return await eventually(current, f"a seat map with {sold} seats sold", 10, 0.1)


async def test_a_stadium_of_a_million_seats_is_created_and_mapped(sale: SaleClient) -> None:
    sections = [
        {"name": "FLOOR", "rows": 100, "seats_per_row": 1000, "price_cents": 30_000},
        {"name": "UPPER", "rows": 900, "seats_per_row": 1000, "price_cents": 8_000},
    ]
    response = await sale.http.post(
        "/api/events",
        json={"name": "Stadium", "sections": sections},
        headers=sale.admin,
        timeout=120,  # a million seats take seconds; the contract is "seconds", not a bound
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert (event["capacity"], event["available"]) == (1_000_000, 1_000_000)
    assert [s["seats"] for s in event["sections"]] == [100_000, 900_000]
    booked = await sale.book(event["id"], "fan", quantity=None, seats=["UPPER-900-1000"])
    bid = booked.json()["booking_id"]
    view = (await sale.wait_decided([bid]))[bid]
    assert (view["status"], view["seats"], view["price_cents"]) == (
        "CONFIRMED",
        ["UPPER-900-1000"],
        8_000,
    )
    seat_map = await _seat_map(sale, event["id"], sold=1)
    assert seat_map["sections"][1]["rows"][-1].endswith(".s")

    too_big = [*sections, {"name": "EXTRA", "rows": 1, "seats_per_row": 1}]
    refused = await sale.http.post(
        "/api/events", json={"name": "Too big", "sections": too_big}, headers=sale.admin
    )
    assert refused.status_code == 400
    assert "1,000,001 seats is more than 1,000,000" in refused.json()["detail"]


async def test_a_section_without_together_gives_its_lowest_free_seats(sale: SaleClient) -> None:
    sections = [
        {"name": "A", "rows": 1, "seats_per_row": 5, "price_cents": 1_000},
        {"name": "B", "rows": 2, "seats_per_row": 2, "price_cents": 3_000},
    ]
    event = await sale.create_event(sections=sections)

    async def decided(buyer: str, quantity: int) -> dict[str, Any]:
        response = await sale.book(event, buyer, quantity=quantity, section="B")
        assert response.status_code == 202, response.text
        bid = response.json()["booking_id"]
        return (await sale.wait_decided([bid]))[bid]

    first = await decided("one", 3)
    assert (first["status"], first["seats"], first["price_cents"]) == (
        "CONFIRMED",
        ["B-1-1", "B-1-2", "B-2-1"],
        9_000,
    )
    # One seat left in B: the request is refused, though section A has five.
    second = await decided("two", 2)
    assert (second["status"], second["reason"], second["seats"]) == ("REJECTED", "SOLD_OUT", [])
    report = await sale.wait_clean(event)
    assert (report["verdict"], report["sold"]) == ("CLEAN", 3)
