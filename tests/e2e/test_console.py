"""The operator console's endpoints against the real API and worker processes: the overview
after a sale agrees with the ledger, the Kafka view finds a booking's message by id and
decodes it, shows a poison message as a dead letter with its reason and the lag of a stopped
worker per partition, and refuses non-admins and bad input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.security.jwt import Token

from api.overview import first_id_since
from scripts.pipeline import Pipeline
from scripts.waiting import eventually
from shared.contracts import partition_of
from tests.e2e.backlog import backlog_with_poison
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


async def console(sale: SaleClient, path: str, **params: Any) -> dict[str, Any]:
    response = await sale.http.get(f"/api/console{path}", params=params, headers=sale.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_overview_after_a_sale_matches_the_ledger_and_finds_a_booking_by_id(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    event = await sale.create_event(capacity=10, per_user_limit=1)
    responses = await asyncio.gather(*(sale.book(event, f"user-{i}") for i in range(25)))
    accepted = [r.json()["booking_id"] for r in responses if r.status_code == 202]
    decided = await sale.wait_decided(accepted)
    audit = await sale.wait_clean(event)

    async def settled() -> dict[str, Any] | None:
        view = await console(sale, "/overview", window_s=60)
        service = view["service"]
        # Everything decided, counted by the ledger, and the sampler has seen the requests.
        done = service["decided"] == len(accepted) and (service["requests_per_s"] or 0) > 0
        return view if done and service["worker_lag"] == 0 else None

    view = await eventually(settled, "the overview counts every decision, lag 0")
    (row,) = [e for e in view["events"] if e["id"] == event]
    assert row["capacity"] == 10
    assert row["sold"] == audit["sold"] == audit["confirmed_quantity"] == 10
    assert row["held"] == 0 and row["free"] == 0
    assert row["verdict"] == "CLEAN"
    service = view["service"]
    assert service["decisions_per_s"] == pytest.approx(len(accepted) / 60)
    latency = service["decision_latency_p50_s"], service["decision_latency_p99_s"]
    assert 0 <= latency[0] <= latency[1] < 30, service
    assert [p["lag"] for p in service["lag_partitions"]] == [0, 0, 0]
    assert service["unavailable"] == []
    assert set(view["sources"]) >= {"requests_per_s", "decisions_per_s", "worker_lag"}

    # A confirmed booking's request, found by its id in its event's partition.
    confirmed = next(b for b in accepted if decided[b]["status"] == "CONFIRMED")
    found = await console(sale, f"/kafka/bookings/{confirmed}")
    assert found["ledger"] == {
        "event_id": event,
        "status": "CONFIRMED",
        "quantity": 1,
        "seats": decided[confirmed]["seats"],
    }
    s = pipeline.settings
    assert found["requests"]["partitions"] == [partition_of(event, range(3))]
    (message,) = found["requests"]["messages"]
    assert message["kind"] == "booking" and message["key"] == str(event)
    assert message["value"]["booking_id"] == confirmed
    assert message["value"]["user_id"] == decided[confirmed]["user_id"]
    assert message["value"]["event_id"] == event
    assert found["dead_letters"] == []

    topics = (await console(sale, "/kafka/topics"))["topics"]
    booking_topic = next(t for t in topics if t["name"] == s.topic)
    assert booking_topic["messages"] == len(accepted)
    assert len(booking_topic["partitions"]) == 3
    for partition in booking_topic["partitions"]:
        assert partition["leader"] is not None
        assert partition["isr"] == partition["replicas"] == [partition["leader"]]


def poison_of(booking_id: str) -> bytes:
    """A message that does not decode, naming a booking."""
    return b"\x00not a booking " + booking_id.encode()


async def test_kafka_view_shows_backlog_lag_per_partition_and_dead_letters(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    s = pipeline.settings
    # Worker stopped: what the API accepts waits in Kafka, visible as the group's lag.
    event, ids = await backlog_with_poison(sale, pipeline, lambda ids: poison_of(ids[0]))
    poison = poison_of(ids[0])

    busy = partition_of(event, range(3))
    group = await console(sale, "/kafka/group")
    assert group["group"] == s.consumer_group and group["members"] == []
    lags = {p["partition"]: p["lag"] for p in group["partitions"]}
    assert lags == {p: 6 if p == busy else 0 for p in range(3)}
    assert group["lag"] == 6

    tail = await console(sale, f"/kafka/topics/{s.topic}/messages", limit=3)
    assert tail["topic"]["messages"] == 6
    kinds = [(m["kind"], m["value"] and m["value"]["booking_id"]) for m in tail["messages"]]
    assert kinds == [("booking", ids[3]), ("booking", ids[4]), ("undecodable", None)]
    assert tail["messages"][2]["raw_preview"] == repr(poison)
    assert tail["messages"][2]["error"]

    # Not decided yet: the ledger does not know it, every partition is searched.
    pending = await console(sale, f"/kafka/bookings/{ids[1]}")
    assert pending["ledger"] is None
    assert pending["requests"]["partitions"] == [0, 1, 2]
    assert [m["value"]["booking_id"] for m in pending["requests"]["messages"]] == [ids[1]]

    # The worker comes back, drains the backlog and parks the poison message.
    pipeline.start_worker()

    async def drained() -> dict[str, Any] | None:
        group = await console(sale, "/kafka/group")
        return group if group["lag"] == 0 and group["members"] else None

    group = await eventually(drained, "the worker drains the backlog", 60)
    (member,) = group["members"]
    assert member["partitions"] == [0, 1, 2]
    committed = {p["partition"]: p["committed"] for p in group["partitions"]}
    assert committed[busy] == 6

    dead = await console(sale, f"/kafka/topics/{s.dlq_topic}/messages")
    (letter,) = dead["messages"]
    assert letter["kind"] == "undecodable" and letter["raw_preview"] == repr(poison)
    assert letter["headers"]["reason"].startswith("undecodable")
    assert letter["headers"]["source"] == f"{s.topic}/{busy}/5"
    # The poison names the first booking: its search shows the dead letter too.
    first = await console(sale, f"/kafka/bookings/{ids[0]}")
    assert [m["headers"]["reason"] for m in first["dead_letters"]] == [letter["headers"]["reason"]]


async def test_console_refuses_non_admins_and_bad_input(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    s = pipeline.settings
    buyer = Token(
        exp=datetime.now(UTC) + timedelta(minutes=5), sub="buyer-1", extras={"role": "buyer"}
    ).encode(s.jwt_secret, "HS256")
    paths = ["/overview", "/kafka/topics", "/kafka/group", "/charts"]
    paths += [f"/kafka/topics/{s.topic}/messages", f"/kafka/bookings/{uuid.uuid4()}"]
    for path in paths:
        anonymous = await sale.http.get(f"/api/console{path}")
        assert anonymous.status_code == 401, path
        as_buyer = await sale.http.get(
            f"/api/console{path}", headers={"Authorization": f"Bearer {buyer}"}
        )
        assert as_buyer.status_code == 403, path

    async def refused(path: str, status: int, says: str, **params: Any) -> None:
        response = await sale.http.get(f"/api/console{path}", params=params, headers=sale.admin)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert says in response.json()["detail"], response.text

    await refused("/kafka/topics/nope/messages", 404, "unknown topic 'nope'")
    await refused(f"/kafka/topics/{s.topic}/messages", 400, "limit", limit=0)
    await refused(f"/kafka/topics/{s.topic}/messages", 400, "limit", limit=501)
    await refused("/kafka/bookings/not-an-id", 400, "is not a booking id (a UUID)")
    await refused(f"/kafka/bookings/{uuid.uuid4()}", 400, "not a UUIDv7")
    await refused("/overview", 400, "window_s", window_s=0)
    unknown = first_id_since(int(datetime.now(UTC).timestamp() * 1000))  # a UUIDv7 of now
    await refused(f"/kafka/bookings/{unknown}", 404, "is not in the ledger")

    # One booking search at a time per API process: the others asked meanwhile get 503.
    answers = await asyncio.gather(
        *(
            sale.http.get(f"/api/console/kafka/bookings/{unknown}", headers=sale.admin)
            for _ in range(3)
        )
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 404 and statuses[-1] == 503, [a.text for a in answers]
    busy = next(a for a in answers if a.status_code == 503)
    assert "Another booking search is running" in busy.json()["detail"]
    assert "retry-after" in busy.headers

    charts = await console(sale, "/charts")
    assert charts["configured"] is False
    assert "TICKETS_PROMETHEUS_URL" in charts["detail"]
