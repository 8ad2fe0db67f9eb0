"""Buyers going through an event's on-sale queue, on the load generator's client: each joins,
waits for admission by polling its entry (less often the further back it is), then books
with its admission token. `attack.sh --queue` and the queue's end-to-end test use it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scripts.loadgen.client import TRANSPORT_ERRORS, Client, bearer, json_body
from scripts.loadgen.progress import Progress

Headers = Callable[[str], bytes]  # a buyer's extra header lines (their token, in token mode)
WAITING = "WAITING"
POLL_MIN_S, POLL_MAX_S, POLL_UNKNOWN_S = 0.3, 3.0, 1.0


def no_headers(_: str) -> bytes:
    return b""


@dataclass
class Journeys:
    """What the buyers saw, from joining to their booking's answer."""

    joins: Counter[str] = field(default_factory=Counter)  # HTTP status of each first join
    ends: Counter[str] = field(default_factory=Counter)  # how each wait ended
    polls: int = 0
    polls_rate_known: int = 0  # polls whose answer carried a measured rate (an ETA)
    booked: Counter[str] = field(default_factory=Counter)  # the admitted buyers' answers
    accepted: dict[str, str] = field(default_factory=dict)  # booking id -> buyer
    auth: dict[str, bytes] = field(default_factory=dict)  # booking id -> its buyer's header
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # buyer -> last entry view
    join_seconds: float = 0.0
    wait_seconds: float = 0.0
    last_accepted_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "joined": sum(self.joins.values()),
            "joins": dict(self.joins),
            "ends": dict(self.ends),
            "polls": self.polls,
            "polls_rate_known": self.polls_rate_known,
            "booked": dict(self.booked),
            "join_seconds": round(self.join_seconds, 3),
            "wait_seconds": round(self.wait_seconds, 3),
        }


async def join_all(
    client: Client,
    event_id: int,
    buyers: Sequence[str],
    headers: Headers = no_headers,
    progress: Progress | None = None,
    out: Journeys | None = None,
) -> Journeys:
    """Every buyer joins the queue once (as fast as the connections allow)."""
    out = out or Journeys()
    started = time.perf_counter()
    path = f"/api/events/{event_id}/queue"

    async def join(user: str) -> None:
        body = json.dumps({"user_id": user}).encode()
        try:
            status, raw = await client.request("POST", path, body, headers(user))
        except TRANSPORT_ERRORS as exc:
            out.joins[type(exc).__name__] += 1
            return
        out.joins[str(status)] += 1
        if status in (200, 201):
            out.final[user] = json.loads(raw)
        if progress is not None:
            progress.update(f"joining: {sum(out.joins.values())}/{len(buyers)}")

    await client.map(buyers, join)
    out.join_seconds = time.perf_counter() - started
    if progress is not None:
        progress.done(
            f"joined: {dict(out.joins)} in {out.join_seconds:.2f} s "
            f"({len(buyers) / out.join_seconds:,.0f}/s)"
        )
    return out


def _pause(entry: dict[str, Any]) -> float:
    """How long a waiting buyer lets pass before asking again: about half its ETA."""
    eta = entry.get("eta_s")
    if eta is None:
        return POLL_UNKNOWN_S
    return float(min(max(eta * 0.5, POLL_MIN_S), POLL_MAX_S))


async def wait_and_book(
    client: Client,
    event_id: int,
    out: Journeys,
    headers: Headers = no_headers,
    progress: Progress | None = None,
    timeout_s: float = 300.0,
) -> Journeys:
    """Every buyer who joined waits for the end of its wait; the admitted ones book one seat
    with their admission token. A buyer still waiting at `timeout_s` ends as TIMEOUT."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s

    async def journey(user: str) -> None:
        entry = out.final[user]
        path = f"/api/events/{event_id}/queue/{entry['queue_id']}"
        while entry["status"] == WAITING:
            if time.monotonic() > deadline:
                out.ends["TIMEOUT"] += 1
                return
            await asyncio.sleep(_pause(entry))
            try:
                status, view = await client.get_json(path, headers(user))
            except TRANSPORT_ERRORS:
                continue
            out.polls += 1
            if status == 200 and isinstance(view, dict):
                entry = out.final[user] = view
                out.polls_rate_known += bool(view.get("rate_known"))
        out.ends[entry["status"]] += 1
        if progress is not None:
            progress.update(f"waiting: {dict(out.ends)}, {out.polls} polls")
        if entry["status"] == "ADMITTED":
            await _book(client, event_id, user, entry["admission_token"], out, headers)

    await asyncio.gather(*(journey(user) for user in list(out.final)))
    out.wait_seconds = time.perf_counter() - started
    if progress is not None:
        progress.done(
            f"waited: {dict(out.ends)} after {out.wait_seconds:.2f} s, {out.polls} polls; "
            f"admitted buyers' bookings: {dict(out.booked)}"
        )
    return out


async def _book(
    client: Client, event_id: int, user: str, token: str, out: Journeys, headers: Headers
) -> None:
    body = json.dumps({"event_id": event_id, "user_id": user, "admission_token": token})
    try:
        status, raw = await client.request("POST", "/api/bookings", body.encode(), headers(user))
    except TRANSPORT_ERRORS as exc:
        out.booked[type(exc).__name__] += 1
        return
    out.booked[str(status)] += 1
    if status == 202:
        booking_id = json_body(raw)["booking_id"]
        out.accepted[booking_id] = user
        out.auth[booking_id] = headers(user)
        out.last_accepted_at = time.time()


async def admin(
    client: Client, token: str, event_id: int, action: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An admin call on the event's queue (`open`, `rate`, or "" for its numbers)."""
    path = f"/api/events/{event_id}/queue" + (f"/{action}" if action else "")
    raw_body = json.dumps(body).encode() if body is not None else b""
    method = "POST" if action else "GET"
    status, raw = await client.request(method, path, raw_body, bearer(token))
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {raw[:300]!r}")
    answer: dict[str, Any] = json.loads(raw)
    return answer
