"""The buyers: a planned demand of booking requests, sent paced and with bounded concurrency,
each retried with its Idempotency-Key until it gets a final answer. In token mode each buyer
carries a signed token of their own, as after a login; where a notifier runs, each has an
account with a mail address."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from scripts.chaos.observe import json_body
from scripts.loadgen.tokens import TokenMinter
from shared.config import Settings

PER_USER_LIMIT = 4
MAX_QUANTITY = 3
# A share of the buyers choose seats (general admission labels R{row}-{n}): half name 1-2 of
# the hot front seats, half ask for 2-3 side by side.
HOT_SEATS = 10
SEAT_SHARE = 0.2


@dataclass(frozen=True)
class Ask:
    """One buyer's booking request, sent `at` seconds after the sale opens."""

    index: int
    event_id: int
    user_id: str
    quantity: int
    key: str
    at: float
    seats: tuple[str, ...] | None = None  # named seats (quantity is their number)
    together: bool = False  # quantity seats side by side

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event_id": self.event_id, "user_id": self.user_id}
        if self.seats is not None:
            return {**body, "seats": list(self.seats)}
        return {**body, "quantity": self.quantity, **({"together": True} if self.together else {})}


def plan_demand(
    events: dict[int, int],
    factor: float,
    duration_s: float,
    rng: random.Random,
    limit: int = PER_USER_LIMIT,
    seat_share: float = SEAT_SHARE,
    stock_share: float = 0.7,
) -> list[Ask]:
    """At least `factor` x capacity tickets per event from buyers who sometimes exceed the
    per-user limit. About 0.9 x capacity arrives over the first `stock_share` of the sale, the
    rest as a rush after it: stock lasts while the faults happen, and the rush sells it out.
    `seat_share` of the requests name seats or ask for seats together."""
    asks: list[Ask] = []
    for event_id, capacity in events.items():
        target = math.ceil(factor * capacity)
        users = [f"e{event_id}-buyer{n}" for n in range(max(2, target // limit))]
        wanted: Counter[str] = Counter()
        total = 0
        while total < target or sum(min(limit, q) for q in wanted.values()) < 1.2 * capacity:
            user, quantity = rng.choice(users), rng.randint(1, MAX_QUANTITY)
            at = (
                rng.uniform(0, stock_share * duration_s)
                if total < 0.9 * capacity
                else rng.uniform(stock_share * duration_s, duration_s)
            )
            ask = _choosing(Ask(0, event_id, user, quantity, "", at), rng, seat_share)
            asks.append(ask)
            wanted[user] += ask.quantity
            total += ask.quantity
    asks.sort(key=lambda a: a.at)
    return [
        dataclasses.replace(ask, index=i, key=f"chaos-{uuid.uuid4().hex}")
        for i, ask in enumerate(asks)
    ]


def _choosing(ask: Ask, rng: random.Random, seat_share: float) -> Ask:
    """The ask, or (`seat_share` of the time) one naming 1-2 hot seats or asking for 2-3
    seats together."""
    if rng.random() < seat_share / 2:
        numbers = sorted(rng.sample(range(1, HOT_SEATS + 1), rng.randint(1, 2)))
        seats = tuple(f"R1-{n}" for n in numbers)
        return dataclasses.replace(ask, quantity=len(seats), seats=seats)
    if rng.random() < seat_share / 2:
        return dataclasses.replace(ask, quantity=max(2, ask.quantity), together=True)
    return ask


def buyer_tokens(settings: Settings, asks: Iterable[Ask]) -> dict[str, str] | None:
    """Token mode: one token per buyer, signed with the API's secret; None in open mode."""
    if settings.buyer_auth == "open":
        return None
    minter = TokenMinter(settings.jwt_secret)
    return {user: minter.mint(user) for user in sorted({a.user_id for a in asks})}


def address_of(user_id: str) -> str:
    """The mail address of a buyer's account."""
    return f"{user_id}@buyers.test"


async def open_accounts(settings: Settings, asks: Iterable[Ask]) -> int:
    """An account for every buyer, as registering makes one, so that the notifier mails each
    of them (buyers without one get no mail). Returns how many."""
    users = sorted({a.user_id for a in asks})
    async with (
        await psycopg.AsyncConnection.connect(settings.database_url) as conn,
        conn.cursor() as cur,
    ):
        # No password verifies against "!": these buyers never log in.
        await cur.executemany(
            "INSERT INTO accounts (user_id, email, password_hash) VALUES (%s, %s, '!')",
            [(user, address_of(user)) for user in users],
        )
    return len(users)


@dataclass(slots=True)  # a soak makes a hundred thousand of them
class Attempt:
    start: float  # monotonic
    end: float
    status: int | str  # HTTP status, or "transport"
    reason: str | None = None  # the answer's `reason` (409 SOLD_OUT, 403 NOT_ADMITTED)


@dataclass
class Outcome:
    ask: Ask
    status: int | str = "pending"  # final: 202, 409 (sold out), another HTTP code, "gave_up"
    booking_id: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    replays: list[tuple[int | str, str | None]] = field(default_factory=list)
    held: bool = False  # a paying buyer saw the booking HELD (events with holds)
    payment: int | str | None = None  # the final answer to its payment, if the buyer paid


class Traffic:
    """Paced buyers with bounded concurrency. Each request keeps its Idempotency-Key across
    retries (503, 409 "in progress", 429, 5xx, transport errors), bounded in count and time.
    With `tokens` (buyer -> token), each request carries its buyer's."""

    def __init__(
        self,
        url: str,
        asks: list[Ask],
        rng: random.Random,
        *,
        concurrency: int = 24,
        max_attempts: int = 40,
        deadline_s: float = 60.0,
        timeout_s: float = 10.0,
        flaky_share: float = 0.0,
        replay_share: float = 0.0,
        replay_window_s: float = 0.0,
        tokens: Mapping[str, str] | None = None,
        pay_share: float | None = None,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.outcomes = [Outcome(ask) for ask in asks]
        self.rng = rng
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s
        self.flaky_share = flaky_share  # first attempt's answer is lost (tiny client timeout)
        self.replay_share = replay_share  # accepted requests sent again later with their key
        self.replay_window_s = replay_window_s
        # Events with holds: `pay_share` of the buyers watch their booking and pay as soon as
        # it is HELD; the others walk away and let any hold run out. None: no holds.
        self.pay_share = pay_share
        self.started = 0.0
        self.done = asyncio.Event()

    @property
    def accepted(self) -> dict[str, Outcome]:
        return {o.booking_id: o for o in self.outcomes if o.booking_id is not None}

    def count(self, status: int | str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def codes(self) -> Counter[str]:
        return Counter(str(a.status) for o in self.outcomes for a in o.attempts)

    def attempts(self) -> Iterable[Attempt]:
        return (a for o in self.outcomes for a in o.attempts)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        gate = asyncio.Semaphore(self.concurrency)
        self.started = self.started or time.monotonic()
        try:
            async with httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout_s, limits=limits
            ) as client:
                await asyncio.gather(*(self._buyer(client, gate, o) for o in self.outcomes))
        finally:
            self.done.set()

    async def _buyer(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, out: Outcome
    ) -> None:
        await asyncio.sleep(max(0.0, self.started + out.ask.at - time.monotonic()))
        flaky = self.rng.random() < self.flaky_share
        async with gate:
            out.status, out.booking_id = await self._request(client, out, flaky)
        paying = self.pay_share is not None and self.rng.random() < self.pay_share
        if out.booking_id is not None and paying:
            await self._pay(client, gate, out)
        if out.status == 202 and self.rng.random() < self.replay_share:
            # Replays come back before the sale ends (or right after, for late buyers).
            end = self.started + self.replay_window_s
            for _ in range(self.rng.randint(1, 2)):
                await asyncio.sleep(self.rng.uniform(0.2, max(0.3, end - time.monotonic())))
                async with gate:
                    out.replays.append(await self._request(client, out, flaky=False))

    async def _request(
        self, client: httpx.AsyncClient, out: Outcome, flaky: bool
    ) -> tuple[int | str, str | None]:
        ask = out.ask
        body = ask.body()
        headers = {"Idempotency-Key": ask.key, **self._auth(ask)}
        deadline = time.monotonic() + self.deadline_s
        delay = 0.1
        for attempt in range(self.max_attempts):
            start = time.monotonic()
            # A flaky first attempt: the request leaves, the client stops listening at once,
            # as when a response is lost on the way back. The retry must find the same booking.
            timeout = httpx.Timeout(self.timeout_s, read=0.002) if flaky and attempt == 0 else None
            retry_after: float | None = None
            try:
                if timeout is None:
                    response = await client.post("/api/bookings", json=body, headers=headers)
                else:
                    response = await client.post(
                        "/api/bookings", json=body, headers=headers, timeout=timeout
                    )
            except httpx.TransportError:
                out.attempts.append(Attempt(start, time.monotonic(), "transport"))
            else:
                code = response.status_code
                answer = json_body(response)
                reason = answer.get("reason") if code != 202 else None
                out.attempts.append(Attempt(start, time.monotonic(), code, reason))
                if code == 202:
                    return 202, str(answer["booking_id"])
                if code == 409 and reason == "SOLD_OUT":
                    return 409, None
                if code not in (409, 429) and code < 500:
                    return code, None  # 400/404/422: a final answer (and a failed check)
                with contextlib.suppress(ValueError):
                    retry_after = float(response.headers.get("retry-after", ""))
            if time.monotonic() > deadline:
                break
            pause = min(retry_after if retry_after is not None else delay, 1.0)
            await asyncio.sleep(pause * self.rng.uniform(0.5, 1.0))
            delay = min(delay * 2, 1.0)
        return "gave_up", None

    def _auth(self, ask: Ask) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens[ask.user_id]}"}

    async def _pay(self, client: httpx.AsyncClient, gate: asyncio.Semaphore, out: Outcome) -> None:
        """Watch the booking until it is decided, and pay as soon as it is HELD (retrying
        with the same Idempotency-Key)."""
        assert out.booking_id is not None
        path = f"/api/bookings/{out.booking_id}"
        deadline = time.monotonic() + self.deadline_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                async with gate:
                    response = await client.get(path, headers=self._auth(out.ask))
                status = json_body(response).get("status") if response.status_code == 200 else None
                if status == "HELD":
                    out.held = True
                    break
                if status not in (None, "PENDING"):
                    return  # decided without a hold (rejected), or gone already
            await asyncio.sleep(0.2 * self.rng.uniform(0.5, 1.0))
        if not out.held:
            return
        body = {"payment_ref": f"chaos-{out.booking_id}"}
        headers = {"Idempotency-Key": f"pay-{out.booking_id}", **self._auth(out.ask)}
        out.payment = "gave_up"
        for _ in range(self.max_attempts):
            if time.monotonic() > deadline:
                return
            paid: httpx.Response | None = None
            async with gate:
                with contextlib.suppress(httpx.TransportError):
                    paid = await client.post(f"{path}/payment", json=body, headers=headers)
            if paid is not None:
                code = paid.status_code
                if code == 202 or (code == 409 and "booking_status" in json_body(paid)):
                    out.payment = code  # 409 with the booking's status: the hold is gone
                    return
                if code not in (409, 429) and code < 500:
                    out.payment = code
                    return
            await asyncio.sleep(0.2 * self.rng.uniform(0.5, 1.0))
