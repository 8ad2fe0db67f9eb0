"""Phase 2: intake, POST /api/bookings answered 202 after Kafka's acknowledgement, on the
real API process (no worker runs, so the event never sells out)."""

from __future__ import annotations

import re

from scripts.bench.progress import say
from scripts.bench.world import World, analyze, api_client, create_event
from scripts.bench.wrk import WrkResult, measured_wrk


async def start_api(world: World) -> None:
    """The real API process, and the events the API-side phases use (created through it)."""
    world.pipeline.start_api()
    assert world.pipeline.api is not None
    world.monitor.watch("api", world.pipeline.api.pid)
    await world.pipeline.wait_ready(timeout_s=60, path="/ready")
    client = await api_client(world.pipeline.url)
    token = world.settings.admin_token
    s = world.sizes
    try:
        world.events["intake"] = await create_event(
            client, token, "bench intake", s.intake_capacity, 1000
        )
        world.events["flash"] = await create_event(client, token, "bench flash", s.flash_seats, 1)
        world.events["warm"] = await create_event(client, token, "bench warm-up", 100, 1)
        world.events["drain"] = await create_event(client, token, "bench hot event", s.backlog, 1)
        world.events["quiet"] = await create_event(client, token, "bench quiet twin", s.backlog, 1)
        world.events["streams"] = await create_event(client, token, "bench streams", 100, 1)
        world.events["watched"] = await create_event(
            client, token, "bench watched holds", s.watched, 1, hold_seconds=600
        )
    finally:
        client.close()
    await analyze(world.settings.database_url)
    say("intake", f"API up at {world.pipeline.url}; events {world.events}")


async def produce_totals(url: str) -> tuple[float, float]:
    """(sum of seconds, count) of the API's tickets_produce_seconds histogram (/metrics):
    how long the API waited for Kafka's acknowledgements."""
    client = await api_client(url, 1)
    try:
        _, body = await client.request("GET", "/metrics")
    finally:
        client.close()
    text = body.decode(errors="replace")
    totals = []
    for suffix in ("sum", "count"):
        found = re.search(rf"^tickets_produce_seconds_{suffix} (\S+)$", text, re.MULTILINE)
        totals.append(float(found.group(1)) if found else 0.0)
    return totals[0], totals[1]


def mean_ms(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    count = after[1] - before[1]
    return 1000 * (after[0] - before[0]) / count if count > 0 else None


async def phase_intake(world: World) -> WrkResult:
    """2. POST /api/bookings -> 202 (Kafka acks=all) on the real API; nothing decides them
    (no worker runs), so the event never sells out. The API's mean wait for Kafka's ack is
    scraped from its /metrics (over the warm-up and the measured run)."""
    await start_api(world)
    url = world.pipeline.url
    before = await produce_totals(url)
    result = await measured_wrk(
        world, "intake", url, world.events["intake"], "202", world.sizes.http_s, "api"
    )
    result.kafka_ack_mean_ms = mean_ms(before, await produce_totals(url))
    return result
