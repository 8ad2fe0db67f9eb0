"""Flash-sale load generator: fire N concurrent bookings at one event, wait until every
accepted booking is decided, and check the outcome against the audit.

`attack.sh` is a thin bash driver around this module; the benchmark can reuse it as a
library (`await attack(AttackConfig(...))` returns a `Result`). It is stdlib-only (uvloop is
used when installed) and talks HTTP/1.1 over keep-alive connections with its own small
client: spawning curl per request, or a general-purpose client, is far too slow to push
100 000 requests through a local API in a reasonable time.

Load only ever goes to this machine: any host other than 127.0.0.1, localhost or ::1 is
refused.

    python -m scripts.loadgen --requests 500 [--event ID | --capacity 100] [--json out.json]

Exit codes: 0 all checks passed, 1 a check failed (audit verdict, undecided bookings, seats
sold), 2 bad usage or configuration, 3 the API could not be used (unreachable, refused).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
DEMO_EVENT_NAME = "Demo: Stadium Tour"
LOCAL_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}
ROOT = Path(__file__).resolve().parent.parent
TOKEN_FILE = ROOT / ".stack" / "admin-token"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


TRANSPORT_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError)


class UsageError(Exception):
    """Bad arguments or configuration (exit 2)."""


class ApiError(Exception):
    """The API could not be reached, or answered a setup call unexpectedly (exit 3)."""


# ------------------------------------------------------------------ minimal HTTP/1.1 client


@dataclass(frozen=True)
class Target:
    """Where the API listens: always a loopback address."""

    host: str
    port: int
    url: str


def local_target(url: str) -> Target:
    """Parse the API URL, refusing anything that is not plain http on this machine."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "http":
        raise UsageError(f"API URL {url!r} must start with http:// (no TLS for local tests)")
    if host not in LOCAL_HOSTS:
        raise UsageError(
            f"refusing to send load to {host or url!r}: load tests only target this machine "
            "(127.0.0.1 or localhost)"
        )
    if parts.path not in ("", "/"):
        raise UsageError(f"API URL {url!r} must not have a path")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise UsageError(f"API URL {url!r} has an invalid port") from exc
    # "localhost" may resolve to ::1 first while the API listens on 127.0.0.1 only.
    return Target(LOCAL_HOSTS[host], port, url.rstrip("/"))


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it run one after the other.

    Understands only what this API sends: responses framed by Content-Length. After any
    transport error the connection is dropped and the next request opens a new one.
    """

    def __init__(self, target: Target, timeout_s: float) -> None:
        self._target = target
        self._timeout_s = timeout_s
        self._host_header = f"Host: {target.host}:{target.port}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and return (status, body). `headers` are raw CRLF-ended lines."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._exchange(method, path, body, headers)
        except BaseException:
            self.close()
            raise

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: bytes
    ) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self._target.host, self._target.port
            )
        assert self._reader is not None
        head = f"{method} {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n".encode()
        if body:
            head += b"Content-Type: application/json\r\n"
        self._writer.write(head + self._host_header + headers + b"\r\n" + body)
        await self._writer.drain()
        raw = await self._reader.readuntil(b"\r\n\r\n")
        status, length, keep_alive = _parse_head(raw)
        payload = await self._reader.readexactly(length) if length else b""
        if not keep_alive:
            self.close()
        return status, payload

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _parse_head(raw: bytes) -> tuple[int, int, bool]:
    """(status, content length, keep-alive) from a response's status line and headers."""
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep_alive = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
        elif name == "transfer-encoding":
            raise ConnectionError(f"unsupported Transfer-Encoding {value.strip()!r}")
    return status, length, keep_alive


class Client:
    """A fixed set of keep-alive connections shared by many concurrent requests."""

    def __init__(self, target: Target, connections: int, timeout_s: float = 30.0) -> None:
        self.target = target
        self.size = connections
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(connections):
            self._idle.put_nowait(Connection(target, timeout_s))

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """One request on whichever connection is free."""
        conn = await self._idle.get()
        try:
            return await conn.request(method, path, body, headers)
        finally:
            self._idle.put_nowait(conn)

    async def get_json(self, path: str, headers: bytes = b"", retries: int = 1) -> tuple[int, Any]:
        """GET a JSON document; retried on a fresh connection after a transport error
        (safe, GET changes nothing) because a kept-alive connection may have idled out."""
        for attempt in range(retries + 1):
            try:
                status, body = await self.request("GET", path, headers=headers)
            except TRANSPORT_ERRORS:
                if attempt == retries:
                    raise
                continue
            return status, _loads(body)
        raise AssertionError("unreachable")

    async def map(self, items: Iterable[Any], fn: Callable[[Any], Awaitable[None]]) -> None:
        """Run `fn` over `items` with at most `size` calls in flight (one per connection)."""
        it = iter(items)

        async def lane() -> None:
            for item in it:  # lanes share the iterator: each item is taken exactly once
                await fn(item)

        await asyncio.gather(*(lane() for _ in range(self.size)))

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def bearer(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\n".encode()


# ------------------------------------------------------------------------------ API calls


async def check_reachable(client: Client) -> None:
    """Fail early and clearly when nothing answers at the API URL."""
    try:
        status, _ = await client.get_json("/health")
    except TRANSPORT_ERRORS as exc:
        raise ApiError(
            f"the API is not reachable at {client.target.url} ({str(exc) or type(exc).__name__}); "
            "is it running? (scripts/stack up, or set TICKETS_API_URL)"
        ) from None
    if status != 200:
        raise ApiError(f"the API at {client.target.url} answered /health with {status}")


async def create_event(client: Client, token: str, capacity: int, name: str) -> dict[str, Any]:
    """POST /api/events (admin); returns the created event."""
    body = json.dumps({"name": name, "capacity": capacity}).encode()
    status, raw = await client.request("POST", "/api/events", body, bearer(token))
    if status != 201:
        raise ApiError(f"creating the event failed: {status} {_detail(raw)}")
    event: dict[str, Any] = json.loads(raw)
    return event


async def get_event(client: Client, event_id: int) -> dict[str, Any]:
    status, event = await client.get_json(f"/api/events/{event_id}")
    if status != 200:
        raise ApiError(f"event {event_id}: {status} {_detail(event)}")
    return dict(event)


async def get_audit(client: Client, token: str, event_id: int) -> dict[str, Any]:
    status, report = await client.get_json(f"/api/events/{event_id}/audit", bearer(token))
    if status != 200:
        raise ApiError(f"audit of event {event_id}: {status} {_detail(report)}")
    return dict(report)


def _detail(body: Any) -> str:
    """The problem `detail` of an error body, for messages."""
    if isinstance(body, bytes):
        body = _loads(body)
    if isinstance(body, dict):
        return str(body.get("detail") or body)
    return "" if body is None else str(body)


# ------------------------------------------------------------------------------- progress


class Progress:
    """A status line on stderr: redrawn in place on a terminal, a line every few seconds
    otherwise (logs and CI stay readable)."""

    def __init__(self, stream: TextIO | None, interval_s: float | None = None) -> None:
        self._stream = stream
        self._tty = bool(stream and stream.isatty())
        self._interval_s = interval_s or (0.2 if self._tty else 5.0)
        self._last = time.monotonic()  # the first line after one interval, not at once
        self._drawn = False

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self._stream is None or (not force and now - self._last < self._interval_s):
            return
        self._last = now
        if self._tty:
            self._stream.write(f"\r\x1b[K{text}")
            self._drawn = True
        else:
            self._stream.write(f"{text}\n")
        self._stream.flush()

    def done(self, text: str) -> None:
        """The phase's final state, always shown, on its own line."""
        self.update(text, force=True)
        if self._tty and self._drawn and self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()
        self._drawn = False


# ------------------------------------------------------------------------------- the attack


@dataclass(frozen=True)
class AttackConfig:
    url: str = DEFAULT_URL
    token: str = ""
    requests: int = 500
    event_id: int | None = None  # None: create a fresh demo event
    capacity: int = 100  # of the demo event
    concurrency: int = 64
    timeout_s: float = 120.0  # how long to wait for decisions after the last request
    request_timeout_s: float = 30.0


@dataclass
class Firing:
    """What the firing phase saw."""

    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    accepted_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    last_accepted_at: float | None = None  # wall clock, to compare with decided_at


@dataclass
class Decisions:
    """Where the accepted bookings ended up."""

    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    last_decided_at: float | None = None
    wait_seconds: float = 0.0


@dataclass
class Result:
    """Everything the attack measured; `to_json()` is what `--json` writes."""

    url: str
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

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def booking_bodies(event_id: int, count: int) -> Iterator[bytes]:
    """One request body per distinct user, made lazily (N may be large). The run tag keeps
    users distinct across runs so repeated attacks on one event never hit the per-user
    limit."""
    tag = uuid.uuid4().hex[:8].encode()
    for i in range(count):
        yield b'{"event_id":%d,"user_id":"load-%s-%d","quantity":1}' % (event_id, tag, i)


async def fire(client: Client, event_id: int, count: int, progress: Progress) -> Firing:
    """Send `count` bookings as fast as the connections allow; keep every 202's id."""
    out = Firing()
    started = time.perf_counter()

    async def book(body: bytes) -> None:
        try:
            status, raw = await client.request("POST", "/api/bookings", body)
        except TRANSPORT_ERRORS as exc:
            out.statuses[_transport_error(exc)] += 1
        else:
            out.statuses[str(status)] += 1
            if status == 202:
                out.accepted_ids.append(json.loads(raw)["booking_id"])
                out.last_accepted_at = time.time()
        out.sent += 1
        progress.update(_firing_line(out, count, time.perf_counter() - started))

    await client.map(booking_bodies(event_id, count), book)
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


def _decided(report: dict[str, Any]) -> int:
    return int(report["confirmed_bookings"]) + int(report["rejected_bookings"])


async def poll_audit(client: Client, token: str, event_id: int) -> dict[str, Any] | None:
    """The audit, or None after a transient failure (5xx, transport error): under load the
    API may shed a poll, which must not end the wait."""
    try:
        status, report = await client.get_json(f"/api/events/{event_id}/audit", bearer(token))
    except TRANSPORT_ERRORS:
        return None
    if status >= 500:
        return None
    if status != 200:
        raise ApiError(f"audit of event {event_id}: {status} {_detail(report)}")
    return dict(report)


async def wait_audit_decided(
    client: Client, token: str, event_id: int, target: int, deadline: float, progress: Progress
) -> None:
    """Cheap wait: poll the audit's decided counts (one query) until they reach `target`
    instead of polling every booking."""
    while time.monotonic() < deadline:
        report = await poll_audit(client, token, event_id)
        if report is not None:
            progress.update(f"deciding: {_decided(report)}/{target} decisions in the ledger")
            if _decided(report) >= target:
                return
        await asyncio.sleep(0.1)


async def fetch_decisions(
    client: Client, ids: list[str], deadline: float, progress: Progress
) -> Decisions:
    """GET each accepted booking; re-poll only those still PENDING (or not readable because
    of a transient error) until the deadline: other traffic on the same event can make the
    audit counts run ahead of our bookings."""
    out = Decisions()
    unresolved: dict[str, str] = dict.fromkeys(ids, "PENDING")  # id -> last state seen

    async def read(booking_id: str) -> None:
        try:
            status, view = await client.get_json(f"/api/bookings/{booking_id}")
        except TRANSPORT_ERRORS as exc:
            unresolved[booking_id] = _transport_error(exc)
            return
        if status == 200 and isinstance(view, dict) and view["status"] != "PENDING":
            del unresolved[booking_id]
            _count_decision(out, view)
        elif status == 200:
            unresolved[booking_id] = "PENDING"
        elif status == 404:
            del unresolved[booking_id]
            out.statuses["MISSING"] += 1
        else:
            unresolved[booking_id] = f"HTTP {status}"

    while True:
        await client.map(list(unresolved), read)
        progress.update(f"checking: {len(ids) - len(unresolved)}/{len(ids)} bookings decided")
        if not unresolved or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)
    for state in unresolved.values():
        out.statuses["PENDING" if state == "PENDING" else "UNREADABLE"] += 1
    return out


def _count_decision(out: Decisions, view: dict[str, Any]) -> None:
    out.statuses[view["status"]] += 1
    if view["status"] == "REJECTED":
        out.reasons[view.get("reason") or "UNKNOWN"] += 1
    if view.get("decided_at"):
        decided = datetime.fromisoformat(view["decided_at"].replace("Z", "+00:00")).timestamp()
        out.last_decided_at = max(out.last_decided_at or decided, decided)


async def settled_audit(
    client: Client, token: str, event_id: int, deadline: float
) -> dict[str, Any]:
    """The audit once no hold is in flight (or the latest one when the deadline passed)."""
    latest = None
    while True:
        latest = await poll_audit(client, token, event_id) or latest
        if latest is not None and latest["verdict"] != "IN_FLIGHT":
            return latest
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.1)
    if latest is None:
        raise ApiError(f"the audit of event {event_id} could not be read before the deadline")
    return latest


async def wait_decided(
    client: Client,
    token: str,
    event_id: int,
    firing: Firing,
    baseline: int,
    timeout_s: float,
    progress: Progress,
) -> tuple[Decisions, dict[str, Any]]:
    """Wait (bounded) until every accepted booking is decided; return the decisions and the
    final audit."""
    started = time.monotonic()
    deadline = started + timeout_s
    target = baseline + len(firing.accepted_ids)
    await wait_audit_decided(client, token, event_id, target, deadline, progress)
    decisions = await fetch_decisions(client, firing.accepted_ids, deadline, progress)
    report = await settled_audit(client, token, event_id, deadline)
    decisions.wait_seconds = time.monotonic() - started
    decided = decisions.statuses["CONFIRMED"] + decisions.statuses["REJECTED"]
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
    if fresh and config.requests >= capacity and report["sold"] != capacity:
        failures.append(
            f"{report['sold']} seats sold of {capacity} although demand ({config.requests}) "
            "covered the whole event"
        )
    return failures


async def prepare_event(
    client: Client, config: AttackConfig
) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """The event to attack (created when none is given), whether it is fresh, and its audit
    before the attack (the baseline of decided bookings)."""
    if config.event_id is None:
        event = await create_event(client, config.token, config.capacity, DEMO_EVENT_NAME)
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
    progress = Progress(progress_stream)
    client = Client(local_target(config.url), config.concurrency, config.request_timeout_s)
    try:
        await check_reachable(client)
        event, fresh, baseline = await prepare_event(client, config)
        event_id = int(event["id"])
        firing = await fire(client, event_id, config.requests, progress)
        decisions, report = await wait_decided(
            client, config.token, event_id, firing, _decided(baseline), config.timeout_s, progress
        )
    finally:
        client.close()
    return _result(config, event, fresh, firing, decisions, report)


def _result(
    config: AttackConfig,
    event: dict[str, Any],
    fresh: bool,
    firing: Firing,
    decisions: Decisions,
    report: dict[str, Any],
) -> Result:
    capacity = int(event["capacity"])
    drain = None
    if firing.last_accepted_at is not None and decisions.last_decided_at is not None:
        drain = max(decisions.last_decided_at - firing.last_accepted_at, 0.0)
    errors = {k: v for k, v in firing.statuses.items() if k not in ("202", "409")}
    return Result(
        url=config.url,
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
        failures=judge(config, fresh, capacity, decisions, report),
    )


# ---------------------------------------------------------------------------------- output


def summary(result: Result) -> str:
    """The human-readable report: counts, rates, then the audit and its verdict."""
    rejected = sum(result.rejected.values())
    reasons = ", ".join(f"{k}: {v}" for k, v in result.rejected.items())
    errors = ", ".join(f"{k}: {v}" for k, v in result.errors.items()) or "none"
    drain = "n/a" if result.drain_seconds is None else f"{result.drain_seconds:.2f} s"
    drain += f" (by decided_at; all checked {result.decide_wait_seconds:.2f} s after firing)"
    rows = [
        ("sent", f"{result.sent}"),
        ("accepted (202)", f"{result.accepted}"),
        ("sold out (409)", f"{result.sold_out}"),
        ("other errors", errors),
        ("confirmed", f"{result.confirmed}"),
        ("rejected", f"{rejected}" + (f" ({reasons})" if reasons else "")),
        ("still pending", f"{result.pending}"),
        *([("unreadable (API errors)", f"{result.unreadable}")] if result.unreadable else []),
        *([("unknown (404)", f"{result.missing}")] if result.missing else []),
        (
            "requests/s",
            f"{result.requests_per_second:,.0f} ({result.sent} in {result.fire_seconds:.2f} s, "
            f"{result.concurrency} connections)",
        ),
        ("last 202 -> all decided", drain),
    ]
    kind = "new demo event" if result.fresh_event else "event"
    lines = [
        f"attack on {kind} {result.event_id} {result.event_name!r} "
        f"(capacity {result.capacity}) at {result.url}",
        *(f"  {name:<24} {value}" for name, value in rows),
        f"audit of event {result.event_id}:",
        json.dumps(result.audit, indent=2),
        f"verdict: {result.verdict}",
    ]
    if result.errors:
        lines.append(
            f"warning: {sum(result.errors.values())} requests failed ({errors}): they were "
            "neither accepted nor refused as sold out; see the API log"
        )
    if result.ok:
        lines.append("result: PASS")
    else:
        lines += [f"result: FAIL: {reason}" for reason in result.failures]
    return "\n".join(lines)


def admin_token_from_env() -> str:
    """TICKETS_ADMIN_TOKEN, else the native stack's generated token file, else ''."""
    token = os.environ.get("TICKETS_ADMIN_TOKEN", "")
    if not token and TOKEN_FILE.is_file():
        token = TOKEN_FILE.read_text().strip()
    return token


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.loadgen",
        description="Fire concurrent bookings at one event on a local API, wait until all "
        "accepted bookings are decided, then audit. URL and admin token come from "
        "TICKETS_API_URL and TICKETS_ADMIN_TOKEN.",
    )
    parser.add_argument("--requests", "-n", type=_positive_int, default=500)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--event", type=_positive_int, help="attack this existing event")
    target.add_argument(
        "--capacity", type=_positive_int, default=100, help="seats of the new demo event"
    )
    parser.add_argument("--concurrency", "-c", type=_positive_int, default=64)
    parser.add_argument(
        "--timeout", type=_positive_float, default=120.0, help="decision wait, seconds"
    )
    parser.add_argument("--url", default=os.environ.get("TICKETS_API_URL") or DEFAULT_URL)
    parser.add_argument(
        "--json", metavar="FILE", help="also write the result as JSON ('-': stdout)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser.parse_args(argv)


def _write_json(result: Result, where: str) -> None:
    text = json.dumps(result.to_json(), indent=2)
    if where == "-":
        print(text)
    else:
        Path(where).write_text(text + "\n")


def _run_loop(main: Coroutine[Any, Any, Result]) -> Result:
    """asyncio.run, on uvloop when it is installed (it is, with uvicorn[standard]): the
    client's own overhead is part of what limits requests/s."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def run(argv: Sequence[str] | None = None) -> int:
    """The command line: run the attack, print the summary, return the exit status."""
    args = parse_args(argv)
    config = AttackConfig(
        url=args.url,
        token=admin_token_from_env(),
        requests=args.requests,
        event_id=args.event,
        capacity=args.capacity,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
    )
    try:
        result = _run_loop(attack(config, None if args.quiet else sys.stderr))
    except UsageError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json == "-":
        _write_json(result, "-")
    else:
        print(summary(result), flush=True)
        if args.json:
            _write_json(result, args.json)
    return EXIT_OK if result.ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run())
