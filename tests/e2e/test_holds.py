"""Holds, payment, expiry and cancellation through the real processes: the API, Kafka, the
worker, Redis and PostgreSQL; Stripe webhooks signed locally with the test secret."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import psycopg
import pytest

from scripts.loadgen.client import Client, local_target
from scripts.pipeline import Pipeline
from scripts.waiting import eventually
from tests import stripe_events
from tests.integration.conftest import topic_size
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e

HOLD_S = 5


async def test_1000_buyers_300_seats_half_the_holders_pay(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    """Exactly the payers are CONFIRMED, the rest EXPIRED, and the expired seats are sold
    again to buyers who were waiting; the audit is CLEAN."""
    event = await sale.create_event(capacity=300, per_user_limit=1, hold_seconds=HOLD_S)
    buyers = [f"buyer-{i}" for i in range(1000)]
    # The burst through the load generator's client: httpx needs several milliseconds per
    # request, and 1,000 of them would outlast the holds.
    fast = Client(local_target(pipeline.url), connections=64)
    answers: dict[str, tuple[int, bytes]] = {}

    async def book(buyer: str) -> None:
        body = json.dumps({"event_id": event, "user_id": buyer}).encode()
        answers[buyer] = await fast.request("POST", "/api/bookings", body)

    try:
        await fast.map(buyers, book)
    finally:
        fast.close()
    assert {status for status, _ in answers.values()} <= {202, 409}
    accepted = {b: json.loads(raw)["booking_id"] for b, (status, raw) in answers.items()
                if status == 202}  # fmt: skip
    # The ledger answers for all of them at once: polling 1,000 bookings one by one would
    # take longer than the holds last.
    statuses = await eventually(
        lambda: _statuses(pipeline, list(accepted.values())), "all decided", 60, 0.1
    )
    holders = [b for b, bid in accepted.items() if statuses[bid] == "HELD"]
    assert len(holders) == 300, Counter(statuses.values())
    payers, idlers = holders[::2], holders[1::2]
    paid = await asyncio.gather(*(sale.pay(accepted[b], f"pay-{b}") for b in payers))
    assert {r.status_code for r in paid} == {202}, [r.text for r in paid if r.status_code != 202]

    # Buyers turned away watch the event and try again whenever seats come back.
    waiting = [b for b in buyers if b not in holders]
    resold: list[str] = []

    async def seats_back() -> int | None:
        available = int((await sale.http.get(f"/api/events/{event}")).json()["available"])
        return available or None

    async def try_again(turn: SaleClient, buyer: str) -> None:
        response = await turn.book(event, buyer)
        if response.status_code == 202:
            bid = response.json()["booking_id"]
            if (await turn.wait_decided([bid]))[bid]["status"] == "HELD":
                assert (await turn.pay(bid, f"pay-again-{buyer}")).status_code == 202
                resold.append(bid)

    while len(resold) < len(idlers):
        available = await eventually(seats_back, "seats back", HOLD_S + 30, 0.1)
        turn, waiting = waiting[:available], waiting[available:]
        assert turn, "no buyer left to sell the returned seats to"
        # Fresh connections for each turn: pooled ones idle past the server's keep-alive.
        async with httpx.AsyncClient(base_url=pipeline.url, timeout=30) as http:
            buyers_turn = SaleClient(http, pipeline.settings.admin_token)
            await asyncio.gather(*(try_again(buyers_turn, b) for b in turn))

    first_wave = await sale.wait_status([accepted[b] for b in holders], {"CONFIRMED", "EXPIRED"})
    assert {b for b in holders if first_wave[accepted[b]]["status"] == "CONFIRMED"} == set(payers)
    assert {b for b in holders if first_wave[accepted[b]]["status"] == "EXPIRED"} == set(idlers)
    second_wave = await sale.wait_status(resold, {"CONFIRMED"})
    expired_seats = {s for b in idlers for s in first_wave[accepted[b]]["seats"]}
    resold_seats = {s for view in second_wave.values() for s in view["seats"]}
    assert resold_seats == expired_seats  # the same 150 seats, sold again

    report = await sale.wait_clean(event)
    assert report["verdict"] == "CLEAN", report
    assert (report["sold"], report["held_quantity"], report["redis_available"]) == (300, 0, 0)
    assert (report["confirmed_bookings"], report["expired_bookings"]) == (300, 150)
    assert report["refunds_due"] == []


async def _statuses(pipeline: Pipeline, booking_ids: list[str]) -> dict[str, str] | None:
    """Every booking's status in the ledger, once all of them are decided."""
    async with await psycopg.AsyncConnection.connect(pipeline.settings.database_url) as conn:
        cur = await conn.execute(
            "SELECT booking_id::text, status FROM bookings WHERE booking_id = ANY(%s::uuid[])",
            [booking_ids],
        )
        found = {bid: status for bid, status in await cur.fetchall()}
    return found if len(found) == len(booking_ids) else None


async def test_pay_and_cancel_answer_clearly(sale: SaleClient, pipeline: Pipeline) -> None:
    event = await sale.create_event(capacity=2, per_user_limit=2, hold_seconds=600)
    bid = (await sale.book(event, "ann")).json()["booking_id"]
    await sale.wait_status([bid], {"HELD"})
    assert (await sale.pay(bid, "pay-ann", key="k1")).status_code == 202
    assert (await sale.pay(bid, "pay-ann", key="k1")).status_code == 202  # a replay
    assert (await sale.pay(bid, "other", key="k1")).status_code == 422  # another body
    confirmed = (await sale.wait_status([bid], {"CONFIRMED"}))[bid]
    assert confirmed["paid_at"] is not None and confirmed["cancelled_at"] is None

    again = await sale.pay(bid, "second")
    assert again.status_code == 409 and again.json()["booking_status"] == "CONFIRMED"
    bad = await sale.http.post(f"/api/bookings/{bid}/payment", json={"payment_ref": ""})
    assert bad.status_code == 400
    unknown = await sale.http.post(
        "/api/bookings/0190d2a8-0000-7000-8000-000000000000/payment", json={"payment_ref": "x"}
    )
    assert unknown.status_code == 404

    assert (await sale.cancel(bid)).status_code == 202
    cancelled = (await sale.wait_status([bid], {"CANCELLED"}))[bid]
    assert cancelled["cancelled_at"] is not None
    twice = await sale.cancel(bid)
    assert twice.status_code == 409 and twice.json()["booking_status"] == "CANCELLED"
    report = await sale.wait_clean(event)
    assert report["verdict"] == "CLEAN", report
    assert (report["cancelled_bookings"], report["sold"], report["redis_available"]) == (1, 0, 2)
    assert [r["payment_ref"] for r in report["refunds_due"]] == ["pay-ann"]


async def test_stripe_webhooks_apply_once_in_any_order(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    secret = pipeline.settings.stripe_webhook_secret
    event = await sale.create_event(capacity=1, hold_seconds=600)
    bid = (await sale.book(event, "sam")).json()["booking_id"]
    await sale.wait_status([bid], {"HELD"})

    async def deliver(body: dict[str, object], signature_secret: str = secret) -> int:
        payload, header = stripe_events.signed(body, signature_secret)
        response = await sale.http.post(
            "/api/webhooks/stripe",
            content=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        return response.status_code

    succeeded = stripe_events.intent_event("evt_2", "payment_intent.succeeded", bid, "pi_9")
    created = stripe_events.intent_event("evt_1", "payment_intent.created", bid, "pi_9")
    completed = stripe_events.session_completed("evt_3", bid, "pi_9")
    async with topic_size(pipeline.settings) as published:
        before = await published()
        assert await deliver(succeeded, "whsec_forged") == 400  # another secret
        assert await deliver({"id": "evt_x"}, "whsec_forged") == 400
        assert await published() == before  # nothing published for a bad signature
        # Out of order (succeeded before created), each delivered 5 times.
        for body in (succeeded, created, completed):
            assert [await deliver(body) for _ in range(5)] == [200] * 5
    view = (await sale.wait_status([bid], {"CONFIRMED"}))[bid]
    assert view["paid_at"] is not None
    report = await sale.wait_clean(event)
    assert report["verdict"] == "CLEAN", report
    assert (report["sold"], report["refunds_due"]) == (1, [])
    # One payment intent: one payment, applied, however many deliveries and event kinds.
    payments = Counter(await _payments(pipeline))
    assert payments == Counter({("stripe", "pi_9", "applied"): 1})


async def _payments(pipeline: Pipeline) -> list[tuple[str, str, str]]:
    async with await psycopg.AsyncConnection.connect(pipeline.settings.database_url) as conn:
        cur = await conn.execute("SELECT provider, payment_ref, outcome FROM payments")
        return [tuple(row) for row in await cur.fetchall()]  # type: ignore[misc]
