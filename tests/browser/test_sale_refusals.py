"""What the buyer is told when the server refuses or rejects: a seat someone else took after
the page drew the map (the worker's SEAT_TAKEN), an admission that ran out (the API's
NOT_ADMITTED) and too many requests (429). Each refusal is real: made by the running
service, with settings that make it happen within a test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from scripts.pipeline import Pipeline, running_pipeline
from scripts.waiting import eventually
from shared.config import Settings
from tests.browser.flows import create_event, sign_up
from tests.browser.page import SalePage, token_mode

pytestmark = pytest.mark.browser

ADMISSION_TTL_S = 2
# One booking per 100 s, burst 2: the third request of a buyer is refused.
BUYER_PER_S = 0.01
BUYER_BURST = 2


@pytest.fixture
async def pipeline(topics: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """This module's API and worker: admissions that last 2 s and a tight per-buyer limit."""
    settings = msgspec.structs.replace(
        token_mode(topics),
        queue_admission_ttl_s=ADMISSION_TTL_S,
        rate_limit_buyer_per_s=BUYER_PER_S,
        rate_limit_buyer_burst=BUYER_BURST,
    )
    async with running_pipeline(settings, tmp_path / "logs") as running:
        yield running


async def test_a_seat_taken_after_the_map_was_drawn_is_said(
    page: SalePage, admin: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    sections = [{"name": "C", "rows": 1, "seats_per_row": 4, "price_cents": 2000}]
    event = await create_event(admin, sections=sections)
    # The map stays as drawn: its live stream is cut, as when a rival is faster than it.
    page.driver.execute_cdp_cmd("Network.enable", {})
    page.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [f"*/events/{event}/stream"]})
    try:
        page.open(event)
        page.register("heidi@example.com")
        page.choose("C-1-3")

        async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as rival:
            await sign_up(rival, "ivan@example.com")
            taken = await rival.post("/api/bookings", json={"event_id": event, "seats": ["C-1-3"]})
            assert taken.status_code == 202, taken.text

            async def rival_confirmed() -> bool | None:
                booking = await rival.get(taken.json()["status_url"])
                return booking.json()["status"] == "CONFIRMED" or None

            await eventually(rival_confirmed, "the rival's booking is confirmed")
        assert page.seat_state("C-1-3") == "free"  # the map still says so
        page.el("#book-chosen").click()
        page.wait_text("#booking-status", "REJECTED")
        page.wait_text("#alert", "Seat taken: someone else got one of those seats first.")
        page.check("seat-taken-server")
    finally:
        page.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


async def test_an_admission_that_ran_out_is_said(page: SalePage, admin: httpx.AsyncClient) -> None:
    event = await create_event(admin, capacity=20, queue=True)
    page.open(event)
    page.register("judy@example.com")
    page.el("#join-queue").click()
    page.wait_text("#message", "You are in")
    admitted_at = time.monotonic()
    page.choose("R1-1")
    # Expiry is the passing of time itself: nothing to await but the clock.
    page.wait(lambda: time.monotonic() - admitted_at > ADMISSION_TTL_S + 1, ADMISSION_TTL_S + 5)
    page.el("#book-chosen").click()
    page.wait_text("#alert", "your admission ran out. Join the queue and wait for your turn.")
    assert not page.el("#booking").is_displayed()  # nothing was booked
    page.check("not-admitted")


async def test_too_many_requests_is_said_with_the_wait(
    page: SalePage, admin: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    event = await create_event(admin, capacity=50)
    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as same_buyer:
        await sign_up(same_buyer, "kim@example.com")  # the page's buyer, from a script too
        for _ in range(BUYER_BURST):
            spent = await same_buyer.post("/api/bookings", json={"event_id": event})
            assert spent.status_code == 202, spent.text
    page.open(event)
    page.sign_in("kim@example.com")
    page.seat("R1-10").click()
    page.el("#book-chosen").click()
    alert = page.wait_text("#alert", "Too many requests: wait ")
    assert alert.endswith(" s and try again.")
    wait_s = int(alert.removeprefix("Too many requests: wait ").split()[0])
    assert 0 < wait_s <= 1 / BUYER_PER_S
    page.check("rate-limited")
