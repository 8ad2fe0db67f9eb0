"""What several browser tests do the same way: events and rival buyers through the JSON API,
and the buyer's whole sale in the page (the console test looks that booking up)."""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass

import httpx
from selenium.webdriver.common.keys import Keys

from scripts.pipeline import Pipeline, settings_env
from tests.browser.page import PASSWORD, SalePage


async def create_event(admin: httpx.AsyncClient, **fields: object) -> int:
    created = await admin.post("/api/events", json={"name": "Browser sale", **fields})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def sign_up(client: httpx.AsyncClient, email: str) -> None:
    """Makes `client` another buyer, through the JSON API with a bearer token."""
    credentials = {"email": email, "password": PASSWORD}
    assert (await client.post("/api/auth/register", json=credentials)).status_code == 201
    login = await client.post("/api/auth/login", json=credentials)
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"


async def accounts_cli(pipeline: Pipeline, *args: str) -> tuple[int, str]:
    """`python -m scripts.accounts ...` against the pipeline's database: status, output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.accounts",
        *args,
        env=settings_env(pipeline.settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


@dataclass(frozen=True)
class Bought:
    event_id: int
    booking_id: str


async def queue_pick_two_seats_and_pay(page: SalePage, admin: httpx.AsyncClient) -> Bought:
    """A buyer registers, queues, picks two seats (by click, then by keyboard), pays and
    sees CONFIRMED without a reload."""
    sections = [{"name": "A", "rows": 6, "seats_per_row": 12, "price_cents": 4500}]
    event = await create_event(admin, sections=sections, hold_seconds=120, queue=True)
    page.open(event)
    assert page.text("#count-free") == "72"
    page.check("signed-out")

    page.register("alice@example.com")
    page.el("#join-queue").click()
    page.wait_text("#message", "You are in")
    assert page.el("#queue").is_displayed() is False

    page.seat("A-2-5").click()
    page.seat("A-2-5").send_keys(Keys.ARROW_RIGHT)
    page.wait(lambda: page.seat("A-2-6").get_attribute("tabindex") == "0")
    page.seat("A-2-6").send_keys(Keys.SPACE)
    page.wait_text("#chosen", "Chosen: A-2-5, A-2-6")
    page.check("seats-chosen")

    page.el("#book-chosen").click()
    page.wait_text("#booking-status", "HELD")
    assert "A-2-5, A-2-6" in page.text("#booking-seats")
    assert re.search(r"pay within [12]:\d\d", page.text("#hold-countdown"))
    page.wait(lambda: page.seat_state("A-2-5") == "held")  # the map follows the stream
    page.check("held")

    page.el("#pay").click()
    page.wait_text("#booking-status", "CONFIRMED")
    page.wait_text("#message", "Confirmed: A-2-5, A-2-6 are yours")
    assert page.still_same_document()  # live, no reload
    page.wait(lambda: page.seat_state("A-2-6") == "sold")
    page.wait_text("#mine-rows", "CONFIRMED")
    assert page.text("#count-sold") == "2"
    page.check("confirmed")
    return Bought(event, page.text("#booking-ref"))
