"""Phase 14: the sale page and the operator console in headless Chromium against the real API
(scripts/browser.py).

14a page weight: bytes transferred by a first load of `/` with an empty cache (Navigation
    and Resource Timing `transferSize`, the page and every file it fetched by the time the
    seat map is drawn; the open availability stream is not counted: it never ends).
14b time to interactive: from navigation start to the page's `tickets-ready` mark, set
    when the first seat map is drawn (and domInteractive, for comparison).
14c, 14d the same for `/console`, signed in as an admin (the session cookie set before each
    load): ready when the first overview (every event, the service's figures) is drawn; the
    Kafka view and the charts load beside it and count as far as they arrived by then. Its
    own API process, in token mode, since sessions need signed tokens.
Each load starts with the browser's cache and cookies cleared. No worker runs: the seat map
comes from the ledger, as before a worker has published one."""

from __future__ import annotations

import asyncio
import secrets
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.auth import SESSION_COOKIE
from scripts.accounts import set_role
from scripts.bench.progress import say
from scripts.bench.world import World
from scripts.browser import headless_chromium
from scripts.pipeline import Pipeline

# A mid-size venue: 4 sections of 10 rows of 25 seats (1,000 seats drawn).
SECTIONS = [{"name": name, "rows": 10, "seats_per_row": 25, "price_cents": 5000} for name in "ABCD"]
READY_TIMEOUT_S = 30.0
MEASURE = """
const nav = performance.getEntriesByType("navigation")[0];
const resources = performance.getEntriesByType("resource");
const ready = performance.getEntriesByName("tickets-ready")[0];
return {
  bytes: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
  requests: 1 + resources.length,
  ready_ms: ready ? ready.startTime : null,
  dom_interactive_ms: nav.domInteractive,
};
"""


@dataclass
class PageLoad:
    bytes: int
    requests: int
    ready_ms: float
    dom_interactive_ms: float


@dataclass
class PageLoads:
    loads: list[PageLoad] = field(default_factory=list)

    @property
    def max_bytes(self) -> int:
        return max(load.bytes for load in self.loads)

    def median(self, name: str) -> float:
        return float(statistics.median(getattr(load, name) for load in self.loads))

    def worst(self, name: str) -> float:
        return float(max(getattr(load, name) for load in self.loads))

    def summary(self) -> str:
        return (
            f"{len(self.loads)} cold loads: {self.max_bytes / 1024:.1f} KB at most, ready p50 "
            f"{self.median('ready_ms'):.0f} ms (max {self.worst('ready_ms'):.0f} ms)"
        )


@dataclass
class WebResult:
    sale: PageLoads
    console: PageLoads


def _loads(url: str, n: int, cookies: Sequence[dict[str, Any]] = ()) -> PageLoads:
    """`n` cold loads of the page, in one browser (sync: Selenium), with `cookies` (DevTools'
    Network.setCookie parameters) set before each."""
    driver = headless_chromium()
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        loads = []
        for _ in range(n):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
            for cookie in cookies:
                driver.execute_cdp_cmd("Network.setCookie", cookie)
            driver.get("about:blank")
            driver.get(url)
            driver.set_script_timeout(READY_TIMEOUT_S)
            driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const check = () => document.documentElement.dataset.ready ? done() :"
                " setTimeout(check, 5); check();"
            )
            measured: dict[str, Any] = driver.execute_script(MEASURE)
            loads.append(PageLoad(**measured))
        return PageLoads(loads)
    finally:
        driver.quit()


async def phase_web(world: World) -> WebResult:
    """14a-14d."""
    url = world.pipeline.url
    headers = {"Authorization": f"Bearer {world.settings.admin_token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        created = await client.post("/api/events", json={"name": "bench web", "sections": SECTIONS})
        created.raise_for_status()
        event_id = created.json()["id"]
    sale = await asyncio.to_thread(_loads, f"{url}/?event={event_id}", world.sizes.page_loads)
    say("web", f"sale page: {sale.summary()}")
    console = await console_loads(world)
    say("web", f"console: {console.summary()}")
    return WebResult(sale, console)


async def console_loads(world: World) -> PageLoads:
    """Cold loads of /console by an admin, on an API of its own that signs sessions."""
    pipeline = Pipeline(world.tokens, world.log_dir / "console-api")
    pipeline.start_api()
    assert pipeline.api is not None
    world.monitor.watch("console-api", pipeline.api.pid)
    try:
        await pipeline.wait_ready(timeout_s=60, path="/ready")
        credentials = {"email": "bench-admin@example.com", "password": secrets.token_urlsafe(16)}
        async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as client:
            (await client.post("/api/auth/register", json=credentials)).raise_for_status()
            await set_role(world.tokens, credentials["email"], "admin")
            # The CSRF cookie the page hands out, then the session (login CSRF is checked).
            (await client.get("/console")).raise_for_status()
            signed_in = await client.post(
                "/api/auth/session",
                json=credentials,
                headers={"X-CSRFToken": client.cookies["csrftoken"]},
            )
            signed_in.raise_for_status()
            token = signed_in.cookies[SESSION_COOKIE]
        session = {
            "name": SESSION_COOKIE,
            "value": token,
            "url": pipeline.url,
            "httpOnly": True,
            "sameSite": "Strict",
        }
        return await asyncio.to_thread(
            _loads, f"{pipeline.url}/console", world.sizes.page_loads, [session]
        )
    finally:
        pipeline.stop()


async def start_page_api(world: World) -> None:
    """`--only web`: the API alone, without the events the other phases create."""
    world.pipeline.start_api()
    assert world.pipeline.api is not None
    world.monitor.watch("api", world.pipeline.api.pid)
    await world.pipeline.wait_ready(timeout_s=60, path="/ready")
