"""The on-sale queue's HTTP contract against the API in this process (no worker: the tests
move the queue themselves with the admission loop's script): joining, reading an entry,
the admission token at the booking route, the proof of work, admin controls, and a queue
whose Redis data was lost."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest
from altcha.v1 import Payload, solve_challenge
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.queue import _entry_stream
from shared import admission, deadlines
from shared.config import Settings
from shared.keys import RedisKeys
from shared.queue import Queues
from shared.redis_clients import open_redis
from tests.sale import SaleClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def queues(api_settings: Settings) -> AsyncIterator[Queues]:
    client = open_redis(api_settings)
    yield Queues(client, RedisKeys(api_settings.redis_prefix))
    await client.aclose()


async def queued_event(sale: SaleClient, **extra: Any) -> int:
    body = {"name": "Queued", "capacity": 10, "per_user_limit": 2, "queue": True, **extra}
    response = await sale.http.post("/api/events", json=body, headers=sale.admin)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def admit(queues: Queues, event: int, n: int) -> None:
    """The admission loop's steps until `n` more entries are admitted (rate: 1,000/s)."""
    await queues.control(event, "rate", 1000)
    admitted = 0
    while admitted < n:
        step = await queues.step(
            event, secrets.token_hex(8), hold=False, sold_out=False, idle_ms=60_000, measured=5.0
        )
        admitted += step.admitted
        await asyncio.sleep(0.002)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def test_join_wait_and_book_with_the_admission_token(
    sale: SaleClient, queues: Queues
) -> None:
    event = await queued_event(sale)
    first = await sale.http.post(f"/api/events/{event}/queue", json={"user_id": "ann"})
    assert first.status_code == 201, first.text
    entry = first.json()
    assert set(entry) == {
        "queue_id", "status", "position", "eta_s", "rate_known", "admission_token"
    }  # fmt: skip
    assert entry["status"] == "WAITING" and entry["admission_token"] is None
    again = await sale.http.post(f"/api/events/{event}/queue", json={"user_id": "ann"})
    assert (again.status_code, again.json()["queue_id"]) == (200, entry["queue_id"])
    await sale.http.post(f"/api/events/{event}/queue", json={"user_id": "bob"})

    body = problem(await sale.book(event, "ann"), 403)
    assert body["reason"] == "NOT_ADMITTED"
    await admit(queues, event, 1)
    view = (await sale.http.get(f"/api/events/{event}/queue/{entry['queue_id']}")).json()
    assert (view["status"], view["position"]) == ("ADMITTED", None)
    token = view["admission_token"]
    assert (await sale.book(event, "ann", admission_token=token)).status_code == 202
    # The token is ann's, for this event only.
    assert problem(await sale.book(event, "bob", admission_token=token), 403)["reason"]
    other = await queued_event(sale)
    assert problem(await sale.book(other, "ann", admission_token=token), 403)["reason"]
    missing = await sale.http.get(f"/api/events/{event}/queue/nosuchentry")
    assert problem(missing, 404)["detail"]


async def test_a_retry_of_an_accepted_booking_outlives_its_admission_token(
    sale: SaleClient, api_settings: Settings
) -> None:
    event = await queued_event(sale)
    # An admission whose token lapses about a second from now (exp is in whole seconds).
    ttl_s = 60
    admitted_at_ms = deadlines.now_ms() - ttl_s * 1000 + 1500
    token = admission.issue(api_settings.admission_key, "kim", event, admitted_at_ms, ttl_s)
    expires_ms = deadlines.admission_expires_at_s(admitted_at_ms, ttl_s) * 1000
    first = await sale.book(event, "kim", key="kim-1", admission_token=token)
    assert first.status_code == 202, first.text
    await asyncio.sleep((expires_ms - deadlines.now_ms()) / 1000 + 0.01)  # until it lapses
    assert deadlines.now_ms() >= expires_ms
    retry = await sale.book(event, "kim", key="kim-1", admission_token=token)
    assert retry.status_code == 202, retry.text
    assert retry.json()["booking_id"] == first.json()["booking_id"]
    fresh = await sale.book(event, "kim", key="kim-2", admission_token=token)
    assert problem(fresh, 403)["reason"] == "NOT_ADMITTED"
    # The refusal freed its key: it is not taken by a request that published nothing.
    assert problem(await sale.book(event, "kim", key="kim-2"), 403)["reason"] == "NOT_ADMITTED"


async def test_on_sale_fields_need_a_queue(sale: SaleClient) -> None:
    # Only the queue enforces opens_at and the proof of work: without one they would be
    # stored and silently ignored, the event on sale at once.
    base = {"name": "Unqueued", "capacity": 10}
    for extra, field in (
        ({"opens_at": "2099-01-01T00:00:00Z"}, "opens_at"),
        ({"queue_pow": 10}, "queue_pow"),
    ):
        response = await sale.http.post("/api/events", json=base | extra, headers=sale.admin)
        assert field in problem(response, 400)["detail"]


async def solved_challenge(sale: SaleClient, event: int, off_by: int = 0) -> str:
    """The event's proof-of-work challenge solved (or, with `off_by`, answered wrongly), as
    the `altcha` payload a join carries."""
    challenge = (await sale.http.get(f"/api/events/{event}/queue/challenge")).json()
    solution = solve_challenge(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxNumber"]
    )
    assert solution is not None
    return Payload(
        challenge["algorithm"],
        challenge["challenge"],
        solution.number + off_by,
        challenge["salt"],
        challenge["signature"],
    ).to_base64()


async def test_proof_of_work_is_asked_and_spent_once(sale: SaleClient) -> None:
    event = await queued_event(sale, queue_pow=2000)
    path = f"/api/events/{event}/queue"
    assert problem(await sale.http.post(path, json={"user_id": "dan"}), 403)["detail"]
    payload = await solved_challenge(sale, event)
    joined = await sale.http.post(path, json={"user_id": "dan", "altcha": payload})
    assert joined.status_code == 201, joined.text
    spent = await sale.http.post(path, json={"user_id": "eve", "altcha": payload})
    assert "spent" in problem(spent, 403)["detail"]
    wrong = await solved_challenge(sale, event, off_by=1)
    assert problem(await sale.http.post(path, json={"user_id": "fay", "altcha": wrong}), 403)
    no_pow = await queued_event(sale)
    assert (await sale.http.get(f"/api/events/{no_pow}/queue/challenge")).status_code == 404


async def test_a_proof_of_work_joins_only_the_event_it_was_solved_for(sale: SaleClient) -> None:
    first, second = await queued_event(sale, queue_pow=500), await queued_event(sale, queue_pow=500)
    payload = await solved_challenge(sale, first)
    other = await sale.http.post(
        f"/api/events/{second}/queue", json={"user_id": "gil", "altcha": payload}
    )
    assert "another event" in problem(other, 403)["detail"]
    # Refused there, it is still good (once) where it was solved.
    mine = await sale.http.post(
        f"/api/events/{first}/queue", json={"user_id": "gil", "altcha": payload}
    )
    assert mine.status_code == 201, mine.text


async def test_admin_controls_and_a_lost_queue(sale: SaleClient, queues: Queues) -> None:
    event = await queued_event(sale, opens_at="2099-01-01T00:00:00Z")
    path = f"/api/events/{event}/queue"
    assert (await sale.http.get(path)).status_code == 401
    assert (
        await sale.http.post(f"{path}/pause", headers={"Authorization": "Bearer x"})
    ).status_code == 403
    stats = (await sale.http.post(f"{path}/pause", headers=sale.admin)).json()
    assert stats["paused"] is True and stats["state"] == "pre"
    stats = (await sale.http.post(f"{path}/resume", headers=sale.admin)).json()
    assert stats["paused"] is False
    rate = await sale.http.post(f"{path}/rate", json={"admit_per_s": 7.5}, headers=sale.admin)
    assert rate.json()["admit_per_s"] == 7.5
    await sale.http.post(path, json={"user_id": "gus"})
    opened = (await sale.http.post(f"{path}/open", headers=sale.admin)).json()
    assert opened["opens_at"] < "2099" and opened["joined"] == 1

    # Redis loses the queue: it says so and admits nobody, until an admin opens it afresh.
    await queues.redis.delete(*queues.keys.queue(event))
    lost = problem(await sale.http.post(path, json={"user_id": "gus"}), 503)
    assert "lost" in lost["detail"]
    assert (await sale.http.get(path, headers=sale.admin)).status_code == 503
    assert problem(await sale.book(event, "gus"), 403)["reason"] == "NOT_ADMITTED"
    reopened = (await sale.http.post(f"{path}/open", headers=sale.admin)).json()
    assert (reopened["joined"], reopened["waiting"]) == (0, 0)
    assert (await sale.http.post(path, json={"user_id": "gus"})).status_code == 201


@pytest.fixture(scope="module")
async def token_api(api_settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = msgspec.structs.replace(
        api_settings, buyer_auth="token", jwt_secret=secrets.token_urlsafe(40)
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


async def test_in_token_mode_a_buyer_sees_only_her_entry(
    token_api: AsyncTestClient[Litestar], api_settings: Settings
) -> None:
    sale = SaleClient(token_api, api_settings.admin_token)
    event = await queued_event(sale)
    auth = token_api.app.state.services.auth

    def bearer(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.issue(user, 'buyer')[0]}"}

    path = f"/api/events/{event}/queue"
    assert (await token_api.post(path, json={})).status_code == 401
    mine = await token_api.post(path, json={}, headers=bearer("hana"))
    assert mine.status_code == 201, mine.text
    entry = f"{path}/{mine.json()['queue_id']}"
    assert (await token_api.get(entry, headers=bearer("hana"))).status_code == 200
    assert (await token_api.get(entry, headers=bearer("ivan"))).status_code == 404
    assert (await token_api.get(entry)).status_code == 401
    assert (await token_api.get(entry, headers=sale.admin)).status_code == 200
    other = await token_api.post(path, json={"user_id": "ivan"}, headers=bearer("hana"))
    assert other.status_code == 403


async def test_a_stream_whose_queue_is_lost_ends_with_an_error_event(
    sale: SaleClient, queues: Queues, api_settings: Settings
) -> None:
    event = await queued_event(sale)
    joined = (await sale.http.post(f"/api/events/{event}/queue", json={"user_id": "lea"})).json()
    entry = await queues.poll(event, joined["queue_id"])
    assert entry is not None
    # The stream's generator on this test's loop (the test client's app runs on its own).
    svc = SimpleNamespace(settings=api_settings, queues=queues)
    stream = _entry_stream(svc, event, entry)  # type: ignore[arg-type]
    first = await anext(stream)
    assert (first.event, msgspec.json.decode(first.data)["status"]) == ("status", "WAITING")
    await queues.redis.delete(*queues.keys.queue(event))
    last = await asyncio.wait_for(anext(stream), 10)
    assert last.event == "error" and "lost" in msgspec.json.decode(last.data)["detail"]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
