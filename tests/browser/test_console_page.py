"""The operator console in a real browser: the booking a buyer just confirmed is found by
its id, its Kafka messages decoded and its event's audit CLEAN; only the admin role sees
anything; the page fits a phone; the charts are drawn from a real Prometheus. Every state
is saved as a screenshot and checked with axe-core."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from scripts.pipeline import Pipeline
from scripts.waiting import eventually
from shared.config import Settings
from shared.dashboard import QUERIES
from tests.browser.flows import accounts_cli, queue_pick_two_seats_and_pay, sign_up
from tests.browser.page import SalePage, fresh_page, token_mode
from tests.monitoring import monitored_pipeline

pytestmark = pytest.mark.browser

OPERATOR = "ops@example.com"
# What the page's own script would get: the server, not the page, refuses a buyer.
FETCH_OVERVIEW = """
const done = arguments[arguments.length - 1];
fetch("/api/console/overview", {credentials: "same-origin"})
  .then((r) => r.text().then((body) => done([r.status, body])));
"""


async def make_admin(pipeline: Pipeline, email: str) -> None:
    status, out = await accounts_cli(pipeline, "grant-admin", email)
    assert status == 0, out
    assert "role admin" in out


async def test_an_operator_finds_the_buyers_booking_by_id_and_sees_the_audit_clean(
    page: SalePage, admin: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    bought = await queue_pick_two_seats_and_pay(page, admin)
    page.el("#sign-out").click()
    page.wait_text("#message", "Signed out")

    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as operator:
        await sign_up(operator, OPERATOR)
    await make_admin(pipeline, OPERATOR)
    page.visit("/console")
    assert page.el("#account").is_displayed() and not page.el("#console").is_displayed()
    page.check("console-sign-in")
    page.sign_in(OPERATOR)

    event_row = f'#events-rows tr[data-event="{bought.event_id}"]'
    page.wait_text(event_row, "CLEAN")
    cells = [c.text for c in page.driver.find_elements("css selector", f"{event_row} td")]
    assert cells[2:6] == ["72", "2", "0", "70"]  # capacity, sold, held, free

    # The buyer's booking reference, typed into the search and sent with Enter.
    box = page.el("#booking-id")
    box.send_keys(bought.booking_id)
    box.send_keys(Keys.ENTER)
    ledger = page.wait_text(
        "#search-out .ledger", f"Ledger: event #{bought.event_id}, CONFIRMED, quantity 2"
    )
    assert "seats A-2-5, A-2-6" in ledger
    assert "audit: CLEAN" in ledger
    rows = page.driver.find_elements("css selector", "#search-out tr[data-kind]")
    by_kind = {r.get_attribute("data-kind"): r.text for r in rows}
    assert set(by_kind) == {"booking", "payment"}, by_kind
    booking = by_kind["booking"]
    for shown in (bought.booking_id, f"event_id: {bought.event_id}", "quantity: 2"):
        assert shown in booking, booking
    assert f"event_id: {bought.event_id}" in by_kind["payment"]
    assert "provider: dev" in by_kind["payment"]
    page.wait_text("#search-out", "Dead letters naming it")

    # The Kafka view: the booking topic's partitions, the worker group and its lag.
    s = pipeline.settings
    page.wait_text("#topics-rows", s.dlq_topic)
    page.wait_text("#group-summary", f"{s.consumer_group} on {s.topic}")
    page.wait(lambda: "lag 0" in page.text("#group-summary"), what="worker lag 0")
    assert len(page.driver.find_elements("css selector", "#lag-rows tr")) == 3
    assert page.text("#members-rows").strip() != "No worker is in the group now."

    # The topic's last messages, decoded.
    page.el("#messages-form button").click()
    page.wait_text("#messages-out", bought.booking_id)
    assert "quantity: 2" in page.text("#messages-out")
    if not s.prometheus_url:
        page.wait_text("#charts-note", "not configured: start with scripts/stack up --monitoring")
    page.el("#booking-id").click()  # the search result in view for the screenshot
    page.check("console")


async def test_a_buyer_is_refused_the_console_until_granted_the_admin_role(
    page: SalePage, pipeline: Pipeline
) -> None:
    status, out = await accounts_cli(pipeline, "grant-admin", "nobody@example.com")
    assert status == 3
    assert "no account is registered as 'nobody@example.com'" in out

    async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as buyer:
        await sign_up(buyer, "frank@example.com")
    page.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True},
    )
    page.visit("/console")
    page.el("#email").send_keys("frank@example.com")
    page.el("#password").send_keys("not the password")
    page.el("#sign-in").click()
    page.wait_text("#alert", "Wrong email or password.")
    page.sign_in("frank@example.com")
    page.wait_text("#alert", "This console needs the admin role, and frank@example.com")
    assert not page.el("#console").is_displayed()
    assert page.driver.find_elements("css selector", "#events-rows tr") == []
    status_code, body = page.driver.execute_async_script(FETCH_OVERVIEW)
    assert status_code == 403, body
    page.check("console-refused")

    await make_admin(pipeline, "frank@example.com")
    page.el("#sign-out").click()
    page.wait_text("#message", "Signed out")
    page.sign_in("frank@example.com")
    page.wait(lambda: page.el("#console").is_displayed(), what="the console opens")
    assert not page.el("#alert").is_displayed()
    page.wait_text("#topics-rows", pipeline.settings.topic)
    # Nothing but the tables' own scrollers is wider than the screen.
    width = page.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 375, width
    page.check("console-phone")


async def test_the_console_draws_the_charts_from_prometheus(
    topics: Settings, browser: WebDriver, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with monitored_pipeline(token_mode(topics), tmp_path) as (pipeline, _):
        admin = {"Authorization": f"Bearer {pipeline.settings.admin_token}"}
        async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as buyer:
            await sign_up(buyer, "grace@example.com")
            event = await buyer.post(
                "/api/events", json={"name": "Charted", "capacity": 20}, headers=admin
            )
            booked = [
                await buyer.post("/api/bookings", json={"event_id": event.json()["id"]})
                for _ in range(5)
            ]
            assert {b.status_code for b in booked} == {202}

            async def charted() -> bool | None:
                charts = (await buyer.get("/api/console/charts", headers=admin)).json()
                rates = [s for s in charts["series"] if s["name"] == "requests_per_s"]
                return any(v for s in rates for _, v in s["points"]) or None

            await eventually(charted, "Prometheus has the sale's request rate", 60, 0.5)
        await make_admin(pipeline, "grace@example.com")

        page = fresh_page(browser, pipeline.url, request.node.name)
        page.visit("/console")
        page.sign_in("grace@example.com")
        page.wait_text("#charts-note", "From Prometheus")
        captions = page.driver.find_elements("css selector", "#charts figcaption")
        names = [caption.text.split()[0] for caption in captions]
        assert names == [q.name for q in QUERIES]
        chart = page.el("#charts svg[aria-label^='requests_per_s']")
        said = chart.get_attribute("aria-label") or ""
        assert re.match(r"requests_per_s: latest \d", said), said  # a value, not a missing one
        line = chart.find_element("css selector", "path")
        assert (line.get_attribute("d") or "").startswith("M")  # drawn
        page.check("console-charts")
