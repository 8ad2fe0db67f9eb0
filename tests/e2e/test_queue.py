"""The on-sale queue end to end: API and worker processes, 5,000 buyers for 500 seats."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter

import httpx
import jwt
import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from scripts.loadgen.client import Client, local_target
from scripts.loadgen.queue import admin, join_all, wait_and_book
from scripts.pipeline import Pipeline
from scripts.sse import events
from shared.contracts import BookingRequested, encode_command, event_key
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

BUYERS = 5000
SEATS = 500
RATE = 200.0


async def create_queued_event(sale: SaleClient, capacity: int, opens_in_s: float) -> int:
    opens_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=opens_in_s)
    body = {
        "name": "Queued",
        "capacity": capacity,
        "per_user_limit": 1,
        "queue": True,
        "opens_at": opens_at.isoformat(),
    }
    response = await sale.http.post("/api/events", json=body, headers=sale.admin)
    assert response.status_code == 201, response.text
    assert response.json()["queue"] is True
    return int(response.json()["id"])


async def watch(http: httpx.AsyncClient, event: int, entry: str) -> list[str]:
    """The statuses an entry's stream sent, until it ended."""
    seen = []
    url = f"/api/events/{event}/queue/{entry}/events"
    async with http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for message in events(response):
            seen.append(msgspec.json.decode(message.data)["status"])
    return seen


async def test_5000_buyers_for_500_seats_through_the_queue(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    event = await create_queued_event(sale, SEATS, opens_in_s=600)
    http = sale.http
    client = Client(local_target(pipeline.url), connections=64)
    buyers = [f"b{i}" for i in range(BUYERS)]
    try:
        # Everyone joins before the opening; joining again is the same entry.
        journeys = await join_all(client, event, buyers)
        assert journeys.joins == {"201": BUYERS}
        assert {e["status"] for e in journeys.final.values()} == {"WAITING"}
        again = await http.post(f"/api/events/{event}/queue", json={"user_id": "b7"})
        assert again.status_code == 200
        assert again.json()["queue_id"] == journeys.final["b7"]["queue_id"]

        await nobody_books_without_admission(sale, pipeline, event)

        # The admin sets the rate and opens the sale; each buyer waits, then books with
        # the admission token.
        stats = await admin(
            client, pipeline.settings.admin_token, event, "rate", {"admit_per_s": RATE}
        )
        assert stats["admit_per_s"] == RATE
        watching = asyncio.create_task(watch(http, event, journeys.final["b0"]["queue_id"]))
        await admin(client, pipeline.settings.admin_token, event, "open")
        await wait_and_book(client, event, journeys, timeout_s=240)
        streamed = await asyncio.wait_for(watching, 30)
    finally:
        client.close()

    ends = journeys.ends
    # One buyer watched her entry as Server-Sent Events instead: it ended with her wait.
    assert streamed[0] == "WAITING" and streamed[-1] == journeys.final["b0"]["status"]
    assert set(ends) == {"ADMITTED", "SOLD_OUT"}, ends
    assert ends["ADMITTED"] >= SEATS
    assert journeys.polls_rate_known > 0  # ETAs came from a measured rate
    # Every admitted buyer who tried got an answer: a seat, or sold out.
    assert set(journeys.booked) <= {"202", "409"}, journeys.booked
    assert sum(journeys.booked.values()) == ends["ADMITTED"]
    decided = await sale.wait_decided(list(journeys.accepted))
    results = Counter((b["status"], b["reason"]) for b in decided.values())
    assert results[("CONFIRMED", None)] == SEATS, results
    assert set(results) <= {("CONFIRMED", None), ("REJECTED", "SOLD_OUT")}, results

    stats = (await http.get(f"/api/events/{event}/queue", headers=sale.admin)).json()
    assert stats["state"] == "sold_out" and stats["seed"]
    assert (stats["admitted"], stats["sold_out"], stats["waiting"]) == (
        ends["ADMITTED"],
        ends["SOLD_OUT"],
        0,
    )
    report = await sale.wait_clean(event)
    assert (report["verdict"], report["sold"]) == ("CLEAN", SEATS), report


async def nobody_books_without_admission(sale: SaleClient, pipeline: Pipeline, event: int) -> None:
    """Without a token, or with a forged one: 403 at the API, and NOT_ADMITTED from the
    worker for messages published straight to Kafka."""
    refused = await sale.book(event, "b1")
    assert refused.status_code == 403
    assert refused.json()["reason"] == "NOT_ADMITTED"
    forged_token = jwt.encode(
        {"sub": "b2", "eid": event, "exp": int(time.time()) + 600, "typ": "admission"},
        b"not the key" * 4,
        algorithm="HS256",
    )
    forged = await sale.book(event, "b2", admission_token=forged_token)
    assert (forged.status_code, forged.json()["reason"]) == (403, "NOT_ADMITTED")
    now_ms = int(time.time() * 1000)
    around = [
        BookingRequested(uuid.uuid4(), event, "b3", 1, now_ms),
        BookingRequested(uuid.uuid4(), event, "b4", 1, now_ms, admission=forged_token),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.settings.bootstrap_servers)
    await producer.start()
    try:
        for message in around:
            await producer.send_and_wait(
                pipeline.settings.topic, encode_command(message), key=event_key(event)
            )
    finally:
        await producer.stop()
    ghosts = await sale.wait_decided([str(m.booking_id) for m in around], unknown_ok=True)
    assert {(g["status"], g["reason"]) for g in ghosts.values()} == {("REJECTED", "NOT_ADMITTED")}
