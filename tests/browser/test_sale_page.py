"""A buyer's sale in a real browser: queue, seats, pay, CONFIRMED live; a hold left unpaid
turns EXPIRED; sold out and seat taken are said; the page works at phone width. Every state
is saved as a screenshot and checked with axe-core."""

from __future__ import annotations

import re

import httpx
import pytest

from scripts.pipeline import Pipeline
from tests.browser.flows import create_event, queue_pick_two_seats_and_pay, sign_up
from tests.browser.page import SalePage

pytestmark = pytest.mark.browser


async def test_a_buyer_queues_picks_two_seats_pays_and_sees_confirmed_live(
    page: SalePage, admin: httpx.AsyncClient
) -> None:
    bought = await queue_pick_two_seats_and_pay(page, admin)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", bought.booking_id
    )


async def test_a_hold_left_unpaid_turns_expired(page: SalePage, admin: httpx.AsyncClient) -> None:
    event = await create_event(admin, capacity=50, hold_seconds=2)
    page.open(event)
    page.register("bob@example.com")
    count = page.el("#best-count")
    count.clear()
    count.send_keys("2")
    page.el("#book-best").click()  # best 2 together
    page.wait_text("#booking-status", "HELD")
    assert "R1-1, R1-2" in page.text("#booking-seats")
    page.wait_text("#booking-status", "EXPIRED")
    page.wait_text("#alert", "Expired: the hold ran out before payment")
    page.wait(lambda: page.seat_state("R1-1") == "free")  # back on sale
    assert page.still_same_document()
    page.check("expired")


async def test_seat_taken_and_sold_out_are_said(
    page: SalePage, admin: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    sections = [{"name": "B", "rows": 1, "seats_per_row": 3, "price_cents": 1000}]
    event = await create_event(admin, sections=sections)
    page.open(event)
    page.register("carol@example.com")
    page.choose("B-1-2")

    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as rival:
        await sign_up(rival, "dave@example.com")
        taken = await rival.post("/api/bookings", json={"event_id": event, "seats": ["B-1-2"]})
        assert taken.status_code == 202, taken.text
        page.wait_text("#alert", "Seat taken: B-1-2 went to someone else")
        assert page.text("#chosen") == "No seat chosen."
        page.check("seat-taken")

        rest = await rival.post(
            "/api/bookings", json={"event_id": event, "seats": ["B-1-1", "B-1-3"]}
        )
        assert rest.status_code == 202, rest.text
    page.wait_text("#message", "Sold out: every seat is sold.")
    page.wait_text("#count-free", "0")
    page.el("#best-count").clear()
    page.el("#best-count").send_keys("1")
    page.el("#book-best").click()
    page.wait_text("#alert", "Sold out: there are no seats left")
    page.check("sold-out")


async def test_the_page_fits_a_phone(page: SalePage, admin: httpx.AsyncClient) -> None:
    sections = [
        {"name": "A", "rows": 8, "seats_per_row": 16, "price_cents": 6000},
        {"name": "B", "rows": 4, "seats_per_row": 20, "price_cents": 3000},
    ]
    event = await create_event(admin, sections=sections, hold_seconds=300)
    page.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True},
    )
    page.open(event)
    page.register("erin@example.com")
    page.choose("A-1-8")
    # Nothing but the seat map's own scroller is wider than the screen.
    width = page.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 375, width
    assert page.el("#book-chosen").is_displayed()
    page.check("phone")


async def test_a_cancellation_the_page_cannot_follow_is_said(
    page: SalePage, admin: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    event = await create_event(admin, capacity=10, hold_seconds=120)
    page.open(event)
    page.register("erin@example.com")
    page.el("#book-best").click()
    page.wait_text("#booking-status", "HELD")
    page.open(event)  # a later visit: the held booking is listed under "my bookings"
    page.wait_text("#mine-rows", "HELD")
    # No worker to decide the cancellation, then no API to ask about it.
    for worker in pipeline.workers:
        pipeline.terminate(worker)
    page.el("#mine-rows button").click()
    page.wait_text("#message", "Cancelling...")
    assert pipeline.api is not None
    pipeline.terminate(pipeline.api)
    page.wait_text("#alert", "The network failed")
    assert not page.el("#message").is_displayed()
