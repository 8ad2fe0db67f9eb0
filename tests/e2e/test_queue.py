"""The on-sale queue end to end: API and worker processes, 5,000 buyers for 500 seats."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import Counter
from typing import Any

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
from shared.keys import RedisKeys
from shared.queue import Queues, draw_order
from shared.redis_clients import open_redis
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

    await admitted_in_the_drawn_order_at_the_rate(pipeline, event, stats)
    admitted = next(u for u, e in journeys.final.items() if e["status"] == "ADMITTED")
    await a_token_admits_only_its_buyer_and_event(
        sale, pipeline, event, admitted, journeys.final[admitted]["admission_token"]
    )


async def admitted_in_the_drawn_order_at_the_rate(
    pipeline: Pipeline, event: int, stats: dict[str, Any]
) -> None:
    """The audit docs/queue.md describes: the admin's seed and the pre-queue give back the
    order the queue admitted in (`draw_order`); and the admissions kept to the rate."""
    client = open_redis(pipeline.settings)
    try:
        queues = Queues(client, RedisKeys(pipeline.settings.redis_prefix))
        pre = await queues.pre_queue(event)
        admissions = await queues.admissions(event)
        done = await client.hvals(queues.keys.queue(event).done)
    finally:
        await client.aclose()
    assert len(pre) == BUYERS  # everyone joined before the opening
    assert [no for no, _ in admissions] == list(range(1, len(admissions) + 1))
    assert [entry for _, entry in admissions] == draw_order(stats["seed"], pre)[: len(admissions)]
    admitted_at_ms = [int(str(d).split(":")[1]) for d in done if str(d).startswith("A:")]
    opened_at_ms = dt.datetime.fromisoformat(stats["opened_at"]).timestamp() * 1000
    elapsed_s = (max(admitted_at_ms) - opened_at_ms) / 1000
    assert len(admitted_at_ms) / elapsed_s <= 1.5 * RATE, (len(admitted_at_ms), elapsed_s)


async def a_token_admits_only_its_buyer_and_event(
    sale: SaleClient, pipeline: Pipeline, event: int, buyer: str, token: str
) -> None:
    """A real admission token, published straight to Kafka for another buyer, and one signed
    with the real key for another event: the worker refuses both."""
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == buyer and claims["eid"] == event
    elsewhere = jwt.encode(
        claims | {"eid": event + 1}, pipeline.settings.admission_key, algorithm="HS256"
    )
    now_ms = int(time.time() * 1000)
    stolen = [
        BookingRequested(uuid.uuid4(), event, f"not-{buyer}", 1, now_ms, admission=token),
        BookingRequested(uuid.uuid4(), event, buyer, 1, now_ms, admission=elsewhere),
    ]
    await publish_straight(pipeline, event, stolen)
    ghosts = await sale.wait_decided([str(m.booking_id) for m in stolen], unknown_ok=True)
    assert {(g["status"], g["reason"]) for g in ghosts.values()} == {("REJECTED", "NOT_ADMITTED")}
    assert len(ghosts) == 2


async def publish_straight(
    pipeline: Pipeline, event: int, messages: list[BookingRequested]
) -> None:
    """Booking requests put on the booking topic directly, past the API's checks."""
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.settings.bootstrap_servers)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                pipeline.settings.topic, encode_command(message), key=event_key(event)
            )
    finally:
        await producer.stop()


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
    await publish_straight(pipeline, event, around)
    ghosts = await sale.wait_decided([str(m.booking_id) for m in around], unknown_ok=True)
    assert {(g["status"], g["reason"]) for g in ghosts.values()} == {("REJECTED", "NOT_ADMITTED")}
