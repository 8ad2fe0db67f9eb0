"""The attack: prepare the event, fire the bookings, wait until every accepted one is
decided, audit, and judge the result."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TextIO

from scripts.loadgen.api import (
    DEFAULT_URL,
    DEMO_EVENT_NAME,
    check_reachable,
    create_event,
    get_audit,
    get_event,
    poll_audit,
    settled_audit,
)
from scripts.loadgen.client import TRANSPORT_ERRORS, Client, UsageError, bearer, local_target
from scripts.loadgen.holds import HoldOutcome, Paying, judge_holds
from scripts.loadgen.progress import Progress
from scripts.loadgen.queue import Journeys, join_all, no_headers, wait_and_book
from scripts.loadgen.queue import admin as queue_admin
from scripts.loadgen.seat_modes import (
    SeatCheck,
    SeatMode,
    SeatRequests,
    check_seats,
    demo_sections,
    usable_capacity,
)
from scripts.loadgen.tokens import BuyerAuth, TokenMinter
from scripts.waiting import poll_until

UNDECIDED = ("PENDING", "HELD")  # a hold is decided for the attack once paid or expired


@dataclass(frozen=True)
class AttackConfig:
    url: str = DEFAULT_URL
    token: str = ""  # the admin's
    buyer_auth: BuyerAuth = "open"  # token: each buyer sends a token signed with jwt_secret
    jwt_secret: str = ""
    requests: int = 500
    event_id: int | None = None  # None: create a fresh demo event
    capacity: int = 100  # of the demo event
    concurrency: int = 64
    timeout_s: float = 120.0  # how long to wait for decisions after the last request
    request_timeout_s: float = 30.0
    hold_seconds: int = 0  # of the demo event: above 0, bookings are HELD until paid
    pay_ratio: float = 0.0  # the fraction of holders who pay
    seats: SeatMode | None = None  # name seats, or ask for seats together
    queue: bool = False  # the demo event sells through its on-sale queue
    admit_per_s: float = 200.0  # ... at this rate

    def problem(self) -> str | None:
        """What is wrong with this combination, or None."""
        if self.event_id is not None and self.hold_seconds:
            return "--hold-seconds applies to the demo event only (an event keeps its own)"
        if self.event_id is None and self.pay_ratio and not self.hold_seconds:
            return "--pay-ratio needs holds: give --hold-seconds"
        if self.pay_ratio and not (0 <= self.pay_ratio <= 1):
            return f"--pay-ratio must be between 0 and 1, got {self.pay_ratio:g}"
        if self.queue and (self.event_id is not None or self.seats or self.hold_seconds):
            return "--queue runs on a new demo event of its own (no --event, seats or holds)"
        if self.event_id is None and self.seats is not None:
            return usable_capacity(self.capacity)
        return None


@dataclass
class Firing:
    """What the firing phase saw."""

    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    accepted_ids: list[str] = field(default_factory=list)
    auth: dict[str, bytes] = field(default_factory=dict)  # token mode: each booking's buyer
    named: dict[str, list[str] | None] = field(default_factory=dict)  # seat modes: the ask
    seconds: float = 0.0
    last_accepted_at: float | None = None  # wall clock, to compare with decided_at


@dataclass
class Decisions:
    """Where the accepted bookings ended up."""

    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # by booking id
    last_decided_at: float | None = None
    wait_seconds: float = 0.0


@dataclass
class Result:
    """Everything the attack measured; `to_json()` is what `--json` writes."""

    url: str
    buyer_auth: str
    event_id: int
    event_name: str
    capacity: int
    fresh_event: bool
    concurrency: int
    sent: int
    accepted: int
    sold_out: int
    errors: dict[str, int]
    fire_seconds: float
    requests_per_second: float
    confirmed: int
    rejected: dict[str, int]
    pending: int
    unreadable: int
    missing: int
    drain_seconds: float | None
    decide_wait_seconds: float
    audit: dict[str, Any]
    verdict: str
    failures: list[str]
    hold_seconds: int = 0
    holds: dict[str, Any] | None = None  # HoldOutcome.to_json(), with holds
    seat_mode: str | None = None
    seats: dict[str, Any] | None = None  # SeatCheck.to_json(), with a seat mode
    queue: dict[str, Any] | None = None  # Journeys.to_json(), with the queue

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def buyer_ids(count: int) -> Iterator[str]:
    """One distinct user per request, made lazily (N may be large). The run tag keeps users
    distinct across runs so repeated attacks on one event never hit the per-user limit."""
    tag = uuid.uuid4().hex[:8]
    return (f"load-{tag}-{i}" for i in range(count))


def _body(event_id: int, user_id: str) -> bytes:
    return b'{"event_id":%d,"user_id":"%s","quantity":1}' % (event_id, user_id.encode())


def booking_bodies(event_id: int, count: int) -> Iterator[bytes]:
    """One request body per distinct user (see `buyer_ids`), made lazily."""
    return (_body(event_id, user) for user in buyer_ids(count))


Request = tuple[bytes, bytes]  # body, extra header lines


def booking_requests(
    event_id: int,
    count: int,
    minter: TokenMinter | None,
    progress: Progress,
    seats: SeatRequests | None = None,
) -> Iterable[Request]:
    """The bookings to fire. Open mode: the body names the buyer, made lazily. Token mode:
    each buyer also gets a signed token of their own, all minted before the first request so
    signing costs nothing during the burst. With `seats`, each body carries a seat choice."""
    body: Callable[[int, str], bytes] = _body if seats is None else seats.body
    if minter is None:
        return ((body(event_id, user), b"") for user in buyer_ids(count))
    started = time.perf_counter()
    requests: list[Request] = []
    for user in buyer_ids(count):
        requests.append((body(event_id, user), bearer(minter.mint(user))))
        progress.update(f"minting: {len(requests)}/{count} buyer tokens")
    progress.done(f"minted: {count} buyer tokens in {time.perf_counter() - started:.2f} s")
    return requests


async def fire(
    client: Client,
    requests: Iterable[Request],
    count: int,
    progress: Progress,
    seat_mode: SeatMode | None = None,
) -> Firing:
    """Send the `count` bookings as fast as the connections allow; keep every 202's id (with
    its buyer's token, and the seats it named)."""
    out = Firing()
    started = time.perf_counter()

    async def book(request: Request) -> None:
        try:
            status, raw = await client.request("POST", "/api/bookings", *request)
        except TRANSPORT_ERRORS as exc:
            out.statuses[_transport_error(exc)] += 1
        else:
            out.statuses[str(status)] += 1
            if status == 202:
                booking_id = json.loads(raw)["booking_id"]
                out.accepted_ids.append(booking_id)
                out.last_accepted_at = time.time()
                if request[1]:
                    out.auth[booking_id] = request[1]
                if seat_mode is not None:
                    out.named[booking_id] = json.loads(request[0]).get("seats")
        out.sent += 1
        progress.update(_firing_line(out, count, time.perf_counter() - started))

    await client.map(requests, book)
    out.seconds = time.perf_counter() - started
    progress.done(_firing_line(out, count, out.seconds))
    return out


def _transport_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return "connection error"


def _firing_line(out: Firing, total: int, elapsed: float) -> str:
    rate = out.sent / elapsed if elapsed > 0 else 0.0
    return (
        f"firing: {out.sent}/{total} sent, {out.statuses['202']} accepted, "
        f"{out.statuses['409']} sold out, {rate:,.0f} req/s"
    )


DECIDED_COUNTS = (
    "confirmed_bookings",
    "rejected_bookings",
    "held_bookings",
    "expired_bookings",
    "cancelled_bookings",
)


def _decided(report: dict[str, Any]) -> int:
    return sum(int(report.get(count) or 0) for count in DECIDED_COUNTS)


async def wait_audit_decided(
    client: Client, token: str, event_id: int, target: int, deadline: float, progress: Progress
) -> None:
    """Cheap wait: poll the audit's decided counts (one query) until they reach `target`
    instead of polling every booking."""

    async def reached() -> bool:
        report = await poll_audit(client, token, event_id)
        if report is None:
            return False
        progress.update(f"deciding: {_decided(report)}/{target} decisions in the ledger")
        return _decided(report) >= target

    await poll_until(reached, deadline - time.monotonic())


async def fetch_decisions(
    client: Client,
    token: str,
    ids: list[str],
    deadline: float,
    progress: Progress,
    settled: Callable[[dict[str, Any]], bool] = lambda view: view["status"] != "PENDING",
    what: str = "decided",
    seen: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> Decisions:
    """GET each booking (as the admin, who may read any buyer's in token mode); re-poll only
    those not `settled` yet (decided, by default) or not readable because of a transient
    error, until the deadline: other traffic on the same event can make the audit counts run
    ahead of our bookings. `seen` is called once with each settled view."""
    out = Decisions()
    admin = bearer(token)
    unresolved: dict[str, str] = dict.fromkeys(ids, "PENDING")  # id -> last state seen

    async def read(booking_id: str) -> None:
        try:
            status, view = await client.get_json(f"/api/bookings/{booking_id}", admin)
        except TRANSPORT_ERRORS as exc:
            unresolved[booking_id] = _transport_error(exc)
            return
        if status == 200 and isinstance(view, dict) and settled(view):
            del unresolved[booking_id]
            _count_decision(out, view)
            if seen is not None:
                await seen(view)
        elif status == 200 and isinstance(view, dict):
            unresolved[booking_id] = view["status"]
        elif status == 404:
            del unresolved[booking_id]
            out.statuses["MISSING"] += 1
        else:
            unresolved[booking_id] = f"HTTP {status}"

    async def all_read() -> bool:
        await client.map(list(unresolved), read)
        progress.update(f"checking: {len(ids) - len(unresolved)}/{len(ids)} bookings {what}")
        return not unresolved

    await poll_until(all_read, deadline - time.monotonic(), interval_s=0.2)
    for state in unresolved.values():
        known = state in ("PENDING", "HELD")
        out.statuses[state if known else "UNREADABLE"] += 1
    return out


def _count_decision(out: Decisions, view: dict[str, Any]) -> None:
    out.views[view["booking_id"]] = view
    out.statuses[view["status"]] += 1
    if view["status"] == "REJECTED":
        out.reasons[view.get("reason") or "UNKNOWN"] += 1
    if view.get("decided_at"):
        decided = datetime.fromisoformat(view["decided_at"].replace("Z", "+00:00")).timestamp()
        out.last_decided_at = max(out.last_decided_at or decided, decided)


async def wait_decided(
    client: Client,
    token: str,
    event_id: int,
    firing: Firing,
    baseline: int,
    timeout_s: float,
    progress: Progress,
    seen: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> tuple[Decisions, dict[str, Any]]:
    """Wait (bounded) until every accepted booking is decided; return the decisions and the
    final audit."""
    started = time.monotonic()
    deadline = started + timeout_s
    target = baseline + len(firing.accepted_ids)
    await wait_audit_decided(client, token, event_id, target, deadline, progress)
    decisions = await fetch_decisions(
        client, token, firing.accepted_ids, deadline, progress, seen=seen
    )
    report = await settled_audit(client, token, event_id, deadline)
    decisions.wait_seconds = time.monotonic() - started
    decided = sum(decisions.statuses[s] for s in ("CONFIRMED", "REJECTED", "HELD"))
    progress.done(
        f"decided: {decided}/{len(firing.accepted_ids)} accepted bookings "
        f"in {decisions.wait_seconds:.2f} s"
    )
    return decisions, report


def judge(
    config: AttackConfig, fresh: bool, capacity: int, decisions: Decisions, report: dict[str, Any]
) -> list[str]:
    """Why the run failed, if it did: the exit status of the whole attack."""
    failures = []
    if report["verdict"] != "CLEAN":
        failures.append(f"audit verdict is {report['verdict']}, not CLEAN")
    if decisions.statuses["PENDING"]:
        failures.append(
            f"{decisions.statuses['PENDING']} accepted bookings still PENDING "
            f"after {config.timeout_s:g} s"
        )
    if decisions.statuses["UNREADABLE"]:
        failures.append(
            f"{decisions.statuses['UNREADABLE']} accepted bookings could not be read "
            "(API errors) before the deadline"
        )
    if decisions.statuses["MISSING"]:
        failures.append(f"{decisions.statuses['MISSING']} accepted bookings are unknown (404)")
    plain = config.seats is None and not config.hold_seconds
    if plain and fresh and config.requests >= capacity and report["sold"] != capacity:
        failures.append(
            f"{report['sold']} seats sold of {capacity} although demand ({config.requests}) "
            "covered the whole event"
        )
    return failures


def refused_buyers(config: AttackConfig, firing: Firing) -> list[str]:
    """A 401 or 403 is never part of a sale: the buyers' mode or secret is not the API's."""
    refused = firing.statuses["401"] + firing.statuses["403"]
    if not refused:
        return []
    if config.buyer_auth == "open":
        why = "the API wants buyer tokens: run with TICKETS_BUYER_AUTH=token"
    else:
        why = "the API did not take the buyers' tokens: is TICKETS_JWT_SECRET the API's?"
    return [f"{refused} requests refused with 401/403: {why}"]


async def prepare_event(
    client: Client, config: AttackConfig
) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """The event to attack (created when none is given), whether it is fresh, and its audit
    before the attack (the baseline of decided bookings)."""
    if config.event_id is None:
        sections = None if config.seats is None else demo_sections(config.capacity)
        event = await create_event(
            client,
            config.token,
            config.capacity,
            DEMO_EVENT_NAME,
            config.hold_seconds,
            sections,
            queue=config.queue,
        )
    else:
        event = await get_event(client, config.event_id)
    baseline = await get_audit(client, config.token, int(event["id"]))
    return event, config.event_id is None, baseline


async def attack(config: AttackConfig, progress_stream: TextIO | None = sys.stderr) -> Result:
    """Run the whole attack: prepare the event, fire, wait for decisions, audit."""
    if not config.token:
        raise UsageError(
            "no admin token: set TICKETS_ADMIN_TOKEN (needed to create the event and read "
            "its audit)"
        )
    problem = config.problem()
    if problem:
        raise UsageError(problem)
    minter = TokenMinter(config.jwt_secret) if config.buyer_auth == "token" else None
    progress = Progress(progress_stream)
    client = Client(local_target(config.url), config.concurrency, config.request_timeout_s)
    holds: HoldOutcome | None = None
    seats: SeatCheck | None = None
    journeys: Journeys | None = None
    try:
        await check_reachable(client)
        event, fresh, baseline = await prepare_event(client, config)
        event_id = int(event["id"])
        if config.queue:
            firing, journeys = await through_queue(client, config, event_id, minter, progress)
        else:
            chooser = None if config.seats is None else SeatRequests.of(config.seats, event)
            requests = booking_requests(event_id, config.requests, minter, progress, chooser)
            firing = await fire(client, requests, config.requests, progress, config.seats)
        paying = None
        if int(event.get("hold_seconds") or 0) > 0:
            paying = Paying(client, config.pay_ratio, firing.auth, progress)
        decisions, report = await wait_decided(
            client,
            config.token,
            event_id,
            firing,
            _decided(baseline),
            config.timeout_s,
            progress,
            seen=paying.seen if paying else None,
        )
        if paying is not None:
            holds, decisions, report = await _holds_run_out(
                client, config, event, firing, decisions, paying, progress
            )
        if config.seats is not None:
            seats = check_seats(config.seats, firing.named, decisions.views)
    finally:
        client.close()
    return _result(config, event, fresh, firing, decisions, report, holds, seats, journeys)


async def through_queue(
    client: Client,
    config: AttackConfig,
    event_id: int,
    minter: TokenMinter | None,
    progress: Progress,
) -> tuple[Firing, Journeys]:
    """Every buyer joins the queue, the admin opens it at the configured rate, each buyer
    waits and the admitted ones book: their bookings are the attack's firing."""
    users = list(buyer_ids(config.requests))
    auth = {u: bearer(minter.mint(u)) for u in users} if minter is not None else {}
    headers = auth.__getitem__ if auth else no_headers
    started = time.perf_counter()
    journeys = await join_all(client, event_id, users, headers, progress)
    await queue_admin(client, config.token, event_id, "rate", {"admit_per_s": config.admit_per_s})
    await queue_admin(client, config.token, event_id, "open")
    await wait_and_book(client, event_id, journeys, headers, progress, config.timeout_s)
    firing = Firing(
        sent=sum(journeys.booked.values()),
        statuses=Counter(journeys.booked),
        accepted_ids=list(journeys.accepted),
        auth=journeys.auth if auth else {},
        seconds=time.perf_counter() - started,
        last_accepted_at=journeys.last_accepted_at,
    )
    return firing, journeys


def queue_failures(journeys: Journeys) -> list[str]:
    """A queue run passes when every buyer's wait ended ADMITTED or SOLD_OUT and every
    admitted buyer's booking was answered 202 or 409."""
    failures = []
    unended = {k: v for k, v in journeys.ends.items() if k not in ("ADMITTED", "SOLD_OUT")}
    if unended:
        failures.append(f"queue waits that did not end ADMITTED or SOLD_OUT: {unended}")
    refused = {k: v for k, v in journeys.joins.items() if k not in ("200", "201")}
    if refused:
        failures.append(f"joins refused: {refused}")
    return failures


async def _holds_run_out(
    client: Client,
    config: AttackConfig,
    event: dict[str, Any],
    firing: Firing,
    decisions: Decisions,
    paying: Paying,
    progress: Progress,
) -> tuple[HoldOutcome, Decisions, dict[str, Any]]:
    """The payers paid as their holds were seen; every accepted booking is read again once no
    hold is left, and the event audited."""
    holds = paying.out
    progress.done(f"paid: {holds.paid} accepted, {holds.late} too late")
    deadline = time.monotonic() + int(event["hold_seconds"]) + config.timeout_s
    final = await fetch_decisions(
        client,
        config.token,
        firing.accepted_ids,
        deadline,
        progress,
        settled=lambda view: view["status"] not in UNDECIDED,
        what="paid, expired or refused",
    )
    final.wait_seconds = decisions.wait_seconds
    final.last_decided_at = decisions.last_decided_at
    report = await settled_audit(client, config.token, int(event["id"]), deadline)
    refunds_due = {str(r["booking_id"]) for r in report.get("refunds_due") or ()}
    judge_holds(holds, paying.holders, paying.paid, final.views, refunds_due)
    progress.done(
        f"holds: {holds.confirmed} paid and confirmed, {holds.expired} expired "
        f"({holds.refunded} of them paid too late for the worker: refund due)"
    )
    return holds, final, report


def _result(
    config: AttackConfig,
    event: dict[str, Any],
    fresh: bool,
    firing: Firing,
    decisions: Decisions,
    report: dict[str, Any],
    holds: HoldOutcome | None = None,
    seats: SeatCheck | None = None,
    journeys: Journeys | None = None,
) -> Result:
    capacity = int(event["capacity"])
    drain = None
    if firing.last_accepted_at is not None and decisions.last_decided_at is not None:
        drain = max(decisions.last_decided_at - firing.last_accepted_at, 0.0)
    errors = {k: v for k, v in firing.statuses.items() if k not in ("202", "409")}
    return Result(
        url=config.url,
        buyer_auth=config.buyer_auth,
        event_id=int(event["id"]),
        event_name=str(event["name"]),
        capacity=capacity,
        fresh_event=fresh,
        concurrency=config.concurrency,
        sent=firing.sent,
        accepted=firing.statuses["202"],
        sold_out=firing.statuses["409"],
        errors=dict(sorted(errors.items())),
        fire_seconds=round(firing.seconds, 3),
        requests_per_second=round(firing.sent / firing.seconds, 1) if firing.seconds else 0.0,
        confirmed=decisions.statuses["CONFIRMED"],
        rejected=dict(sorted(decisions.reasons.items())),
        pending=decisions.statuses["PENDING"],
        unreadable=decisions.statuses["UNREADABLE"],
        missing=decisions.statuses["MISSING"],
        drain_seconds=None if drain is None else round(drain, 3),
        decide_wait_seconds=round(decisions.wait_seconds, 3),
        audit=report,
        verdict=str(report["verdict"]),
        failures=refused_buyers(config, firing)
        + judge(config, fresh, capacity, decisions, report)
        + (holds.failures if holds else [])
        + (seats.failures[:10] if seats else [])
        + (queue_failures(journeys) if journeys else []),
        hold_seconds=int(event.get("hold_seconds") or 0),
        holds=holds.to_json() if holds else None,
        seat_mode=config.seats,
        seats=seats.to_json() if seats else None,
        queue=journeys.to_json() if journeys else None,
    )
