"""Live updates through the real processes: a buyer's booking stream, an event's
availability stream, and the booking-events topic against the ledger."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from scripts import booking_events
from scripts.pipeline import Pipeline
from scripts.sse import Event, events
from shared.config import Settings
from tests.booking_events import published
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


@pytest.fixture
async def api_only(
    topics: Settings, redis_client: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """The API without a worker yet: the test starts it when it wants decisions."""
    running = Pipeline(topics, log_dir=tmp_path / "logs")
    running.start_api()
    try:
        await running.wait_ready(path="/health")
        yield running
    finally:
        running.stop()


async def _next(stream: AsyncIterator[Event], timeout_s: float = 20.0) -> Event:
    return await asyncio.wait_for(anext(stream), timeout_s)


async def test_a_stream_opened_before_the_decision_sees_held_then_confirmed(
    api_only: Pipeline,
) -> None:
    async with httpx.AsyncClient(base_url=api_only.url, timeout=30) as http:
        sale = SaleClient(http, api_only.settings.admin_token)
        event = await sale.create_event(capacity=10, hold_seconds=60)
        booked = await sale.book(event, "watcher", 2)
        assert booked.status_code == 202, booked.text
        booking_id = booked.json()["booking_id"]
        url = f"/api/bookings/{booking_id}/events"
        async with http.stream("GET", url, headers=sale.admin) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            first = await _next(stream)
            assert (first.event, json.loads(first.data)["status"]) == ("status", "PENDING")
            api_only.start_worker()  # only now can it be decided
            held = json.loads((await _next(stream, 60)).data)
            assert (held["status"], len(held["seats"])) == ("HELD", 2)
            assert (await sale.pay(booking_id, "pay-live")).status_code == 202
            confirmed = json.loads((await _next(stream)).data)
            assert (confirmed["status"], confirmed["seats"]) == ("CONFIRMED", held["seats"])
            assert confirmed["paid_at"] is not None
            with pytest.raises(StopAsyncIteration):  # the server ends it after CONFIRMED
                await _next(stream)


async def test_a_stream_opened_after_the_decision_gets_it_at_once_and_ends(
    sale: SaleClient,
) -> None:
    event = await sale.create_event(capacity=1)
    first, second = await sale.book(event, "a"), await sale.book(event, "b")
    ids = [first.json()["booking_id"], second.json()["booking_id"]]
    decided = await sale.wait_decided(ids)
    for booking_id in ids:
        async with sale.http.stream(
            "GET", f"/api/bookings/{booking_id}/events", headers=sale.admin
        ) as response:
            received = [e async for e in events(response)]
        assert [e.event for e in received] == ["status"]
        assert json.loads(received[0].data) == decided[booking_id]
    assert sorted(v["status"] for v in decided.values()) == ["CONFIRMED", "REJECTED"]


async def test_the_booking_stream_is_its_owners_only(sale: SaleClient) -> None:
    missing = await sale.http.get("/api/bookings/0190c4a8-0000-7000-8000-000000000000/events")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_the_availability_stream_follows_the_sale(sale: SaleClient) -> None:
    event = await sale.create_event(
        sections=[
            {"name": "A", "rows": 2, "seats_per_row": 10, "price_cents": 5000},
            {"name": "B", "rows": 1, "seats_per_row": 10, "price_cents": 2000},
        ]
    )
    url = f"/api/events/{event}/stream"
    async with sale.http.stream("GET", url) as response:
        assert response.status_code == 200
        stream = events(response)
        first = await _next(stream)
        opened = json.loads(first.data)
        assert (first.event, opened["free"], opened["sold"]) == ("availability", 30, 0)
        assert first.id == str(opened["version"])
        seen: list[tuple[float, dict[str, Any]]] = []

        async def read_until_sold(count: int) -> None:
            # Read as messages arrive (while the buyers book), so their spacing is measured.
            while not seen or seen[-1][1]["sold"] < count:
                message = await _next(stream)
                seen.append((time.monotonic(), json.loads(message.data)))

        reader = asyncio.create_task(read_until_sold(12))
        bought: list[dict[str, Any]] = []
        for n in range(6):
            booked = await sale.book(event, f"fan-{n}", 2, section="A")
            bought.append(booked.json())
        await sale.wait_decided([b["booking_id"] for b in bought])
        await asyncio.wait_for(reader, 20)
        last = seen[-1][1]
        sections = {s["name"]: s for s in last["sections"]}
        assert (sections["A"]["sold"], sections["A"]["free"], sections["B"]["free"]) == (12, 8, 10)
        assert last["free"] == 18
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
        assert all(gap >= 0.2 for gap in gaps), gaps  # at most one per 250 ms (some slack)
        versions = [message["version"] for _, message in seen]
        assert versions == sorted(set(versions))

    # Resuming with the last id: nothing until the map moves past it, then the new state.
    headers = {"Last-Event-ID": str(last["version"])}
    async with sale.http.stream("GET", url, headers=headers) as response:
        stream = events(response)
        pending = asyncio.ensure_future(_next(stream))
        done, _ = await asyncio.wait({pending}, timeout=1.0)
        assert not done, "a resumed stream repeated a state the client had"
        booked = await sale.book(event, "late-fan", 1, section="B")
        await sale.wait_decided([booked.json()["booking_id"]])
        resumed = json.loads((await pending).data)
        assert resumed["version"] > last["version"]
        assert {s["name"]: s["sold"] for s in resumed["sections"]} == {"A": 12, "B": 1}


async def test_the_topic_holds_one_message_per_state_change(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    """A sale with holds, payments, a cancellation and expiries: the booking-events topic
    holds each state change once, in seq order, and agrees with the ledger."""
    event = await sale.create_event(capacity=20, hold_seconds=3)
    answers = await asyncio.gather(*(sale.book(event, f"u{n}", 1 + n % 2) for n in range(20)))
    ids = [a.json()["booking_id"] for a in answers if a.status_code == 202]
    decided = await sale.wait_decided(ids)
    held = [b for b, v in decided.items() if v["status"] == "HELD"]
    for booking_id in held[::2]:
        assert (await sale.pay(booking_id, f"p-{booking_id}")).status_code == 202
    await sale.wait_status(held[::2], {"CONFIRMED"})
    assert (await sale.cancel(held[0])).status_code == 202
    final = await sale.wait_status(ids, {"CONFIRMED", "REJECTED", "EXPIRED", "CANCELLED"})
    [verdict] = await booking_events.check(pipeline.settings, [event])
    assert verdict.ok, verdict
    assert verdict.changes == len(ids) + len(held) + 1  # decided, paid or expired, cancelled
    messages = await published(pipeline.settings, event, verdict.changes)
    last = {m["booking_id"]: m["status"] for m in messages}
    assert last == {b: v["status"] for b, v in final.items()}
