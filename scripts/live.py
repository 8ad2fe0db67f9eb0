"""Watch a flash sale live in a terminal: intake, outcomes, worker lag, decision latency and
the lie detector's verdict for one event.

    python -m scripts.live --event ID [--interval S] [--api URL] [--worker-metrics URL ...]
                           [--once | --duration S]

Reads the API's /metrics, each worker's /metrics (default: 127.0.0.1 on
TICKETS_WORKER_METRICS_PORT) and the event's audit (admin token from TICKETS_ADMIN_TOKEN, else
.stack/admin-token). On a terminal the view redraws in place until Ctrl-C; when stdout is
not a terminal it prints one line per refresh. `--once` prints a single snapshot.

The counters cover everything the processes handled since they started (every event); the
EVENT block is the chosen event's audit. Rates are the change between two refreshes.

Exit status: 0 done, 2 bad usage, 3 `--once` could not reach the API.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from shared.config import load_or_exit
from shared.metrics import (
    BOOKING_REQUESTS,
    CONSUMER_LAG,
    DEAD_LETTERS,
    DECISION_LATENCY,
    DECISIONS,
    BatchHistogram,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN_FILE = ROOT / ".stack" / "admin-token"
DEFAULT_API = "http://127.0.0.1:8000"
HTTP_TIMEOUT_S = 2.0
QUANTILES = (0.5, 0.95, 0.99)
EXIT_OK, EXIT_USAGE, EXIT_UNREACHABLE = 0, 2, 3
# What reading one source can fail with; the view then says why, and carries on.
FETCH_ERRORS = (OSError, ValueError, http.client.HTTPException)


def _family(metric: MetricWrapperBase | BatchHistogram) -> str:
    """The family name a metric of shared/metrics.py is exposed under."""
    name: str = next(iter(metric.describe())).name
    return name


REQUESTS = _family(BOOKING_REQUESTS) + "_total"
DECIDED = _family(DECISIONS) + "_total"
DEAD = _family(DEAD_LETTERS) + "_total"
LAG = _family(CONSUMER_LAG)
LATENCY_BUCKETS = _family(DECISION_LATENCY) + "_bucket"


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Scrape:
    """One /metrics page, parsed with prometheus_client: label sets and values by sample."""

    samples: dict[str, list[tuple[dict[str, str], float]]]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return cls(samples)

    def total(self, name: str) -> float:
        return sum(value for _, value in self.samples.get(name, ()))

    def by(self, name: str, *labels: str) -> dict[tuple[str, ...], float]:
        """Values summed per combination of the given labels."""
        sums: dict[tuple[str, ...], float] = {}
        for sample_labels, value in self.samples.get(name, ()):
            key = tuple(sample_labels.get(label, "") for label in labels)
            sums[key] = sums.get(key, 0.0) + value
        return sums

    def has(self, name: str) -> bool:
        return name in self.samples


def _combine(scrapes: Sequence[Scrape]) -> Scrape:
    """Several processes' scrapes as one (counters add up across workers)."""
    merged: dict[str, list[tuple[dict[str, str], float]]] = {}
    for scrape in scrapes:
        for name, values in scrape.samples.items():
            merged.setdefault(name, []).extend(values)
    return Scrape(merged)


def _get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 (http only)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _problem(exc: BaseException) -> str:
    """A short reason a source could not be read."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        return str(reason.strerror if isinstance(reason, OSError) else reason).lower()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc)


@dataclass(frozen=True)
class Snapshot:
    """Everything read in one refresh."""

    event_id: int
    at: float  # time.monotonic() when it was taken
    wall: datetime
    api: Scrape | None
    api_error: str | None
    worker_urls: list[str]
    workers: list[Scrape | None]  # None where the worker did not answer
    worker_errors: list[str | None]
    event: dict[str, Any] | None
    audit: dict[str, Any] | None
    audit_error: str | None


@dataclass(frozen=True)
class Sources:
    """Where the numbers come from."""

    api: str
    worker_metrics: list[str]
    event_id: int
    admin_token: str

    def _metrics(self, url: str) -> Scrape:
        status, body = _get(url)
        if status != 200:
            raise ValueError(f"HTTP {status}")
        return Scrape.parse(body.decode())

    def _json(self, path: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        status, body = _get(self.api + path, headers)
        if status == 200:
            return dict(json.loads(body))
        if status == 404:
            raise ValueError(f"event {self.event_id} does not exist")
        if status in (401, 403):
            raise ValueError("admin token refused: set TICKETS_ADMIN_TOKEN")
        raise ValueError(f"HTTP {status}")

    def snapshot(self) -> Snapshot:
        at, wall = time.monotonic(), datetime.now(UTC)
        api: Scrape | None = None
        api_error = None
        try:
            api = self._metrics(self.api + "/metrics")
        except FETCH_ERRORS as exc:
            api_error = _problem(exc)
        workers: list[Scrape | None] = []
        worker_errors: list[str | None] = []
        for url in self.worker_metrics:
            try:
                workers.append(self._metrics(url))
                worker_errors.append(None)
            except FETCH_ERRORS as exc:
                workers.append(None)
                worker_errors.append(_problem(exc))
        event = audit = None
        audit_error = api_error
        if api is not None:
            try:
                event = self._json(f"/api/events/{self.event_id}")
                if not self.admin_token:
                    raise ValueError("no admin token: set TICKETS_ADMIN_TOKEN")
                auth = {"Authorization": f"Bearer {self.admin_token}"}
                audit = self._json(f"/api/events/{self.event_id}/audit", auth)
            except FETCH_ERRORS as exc:
                audit_error = _problem(exc)
        return Snapshot(
            self.event_id,
            at,
            wall,
            api,
            api_error,
            self.worker_metrics,
            workers,
            worker_errors,
            event,
            audit,
            audit_error,
        )


# ---------------------------------------------------------------------------- computing


@dataclass(frozen=True)
class Count:
    """A counter's total and its rate per second since the previous refresh."""

    total: float
    rate: float | None


def _count(now: float, before: float | None, seconds: float | None) -> Count:
    if before is None or not seconds:
        return Count(now, None)
    # A counter that went down belongs to a restarted process: it counts from zero again.
    delta = now - before if now >= before else now
    return Count(now, delta / seconds)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative (upper bound, count) buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the highest finite bucket: its bound is all we know
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def _buckets(scrape: Scrape) -> dict[float, float]:
    return {float(le): count for (le,), count in scrape.by(LATENCY_BUCKETS, "le").items()}


@dataclass(frozen=True)
class Summary:
    """What the view shows, derived from two consecutive snapshots."""

    snapshot: Snapshot
    seconds: float | None  # since the previous snapshot; None on the first one
    requests: Count | None
    outcomes: dict[str, Count]
    decided: Count | None
    decisions: dict[tuple[str, str], Count]
    dead_letters: Count | None
    lag: int | None
    latency: dict[float, float | None] = field(default_factory=dict)
    latency_window: str = ""

    @property
    def workers_up(self) -> int:
        return sum(scrape is not None for scrape in self.snapshot.workers)

    @property
    def verdict(self) -> str | None:
        return None if self.snapshot.audit is None else str(self.snapshot.audit["verdict"])


def _counts(
    now: Scrape, before: Scrape | None, name: str, labels: tuple[str, ...], seconds: float | None
) -> dict[tuple[str, ...], Count]:
    """Each labelled series of a counter; one that appeared since `before` started at 0."""
    old = before.by(name, *labels) if before is not None else {}
    return {
        key: _count(total, old.get(key, 0.0) if before is not None else None, seconds)
        for key, total in sorted(now.by(name, *labels).items())
    }


def _sum(now: Scrape, before: Scrape | None, name: str, seconds: float | None) -> Count:
    return _count(now.total(name), before.total(name) if before is not None else None, seconds)


def summarize(previous: Snapshot | None, current: Snapshot) -> Summary:
    seconds = None if previous is None else current.at - previous.at
    requests = None
    outcomes: dict[str, Count] = {}
    if current.api is not None:
        before_api = previous.api if previous is not None else None
        counts = _counts(current.api, before_api, REQUESTS, ("outcome",), seconds)
        outcomes = {outcome: count for (outcome,), count in counts.items()}
        requests = _sum(current.api, before_api, REQUESTS, seconds)

    up = [scrape for scrape in current.workers if scrape is not None]
    # Rates only when the same workers answered both times; otherwise the sums are not alike.
    before_workers = None
    if previous is not None and [s is None for s in previous.workers] == [
        s is None for s in current.workers
    ]:
        before_workers = _combine([s for s in previous.workers if s is not None])
    decided = dead = None
    decisions: dict[tuple[str, str], Count] = {}
    lag = None
    latency: dict[float, float | None] = {}
    window = ""
    if up:
        workers = _combine(up)
        counts = _counts(workers, before_workers, DECIDED, ("status", "reason"), seconds)
        decisions = {(status, reason): count for (status, reason), count in counts.items()}
        decided = _sum(workers, before_workers, DECIDED, seconds)
        dead = _sum(workers, before_workers, DEAD, seconds)
        if len(up) == len(current.workers) and workers.has(LAG):
            lag = int(workers.total(LAG))
        latency, window = _latency(workers, before_workers, seconds)
    return Summary(
        current, seconds, requests, outcomes, decided, decisions, dead, lag, latency, window
    )


def _latency(
    now: Scrape, before: Scrape | None, seconds: float | None
) -> tuple[dict[float, float | None], str]:
    """Decision latency percentiles over the last interval, or since start when the worker
    decided nothing in the interval."""
    cumulative = _buckets(now)
    window = "since start"
    buckets = cumulative
    if before is not None and seconds:
        old = _buckets(before)
        delta = {le: count - old.get(le, 0.0) for le, count in cumulative.items()}
        if all(value >= 0 for value in delta.values()) and delta.get(math.inf, 0.0) > 0:
            buckets, window = delta, f"last {seconds:.1f}s"
    ordered = sorted(buckets.items())
    return {q: quantile(q, ordered) for q in QUANTILES}, window


# ----------------------------------------------------------------------------- rendering

GREEN, YELLOW, RED, BOLD, RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
VERDICT_COLOURS = {"CLEAN": GREEN, "IN_FLIGHT": YELLOW, "DRIFT": RED, "OVERSOLD": RED}
OUTCOME_LABELS = {"accepted": "accepted (202)", "sold_out": "sold out (409)"}


def _rate(count: Count | None) -> str:
    if count is None or count.rate is None:
        return "-"
    return f"{count.rate:.1f}"


def _total(count: Count | None) -> str:
    return "-" if count is None else f"{count.total:.0f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def _row(label: str, count: Count | None) -> str:
    return f"  {label:<34}{_rate(count):>12}{_total(count):>12}"


def render_panel(
    summary: Summary, interval: float | None = None, colour: bool = False
) -> list[str]:
    """The full view, one string per line; `interval` is None for a one-off snapshot."""
    snap = summary.snapshot
    audit, event = snap.audit, snap.event
    name = f' "{event["name"]}"' if event else ""
    refresh = f" - every {interval:g}s, Ctrl-C stops" if interval is not None else ""
    api = "up" if snap.api is not None else f"DOWN: {snap.api_error}"
    lines = [
        f"tickets live - event {snap.event_id}{name} - {snap.wall:%H:%M:%S} UTC{refresh}",
        f"API {api} - workers {summary.workers_up}/{len(snap.workers)} up",
    ]
    for url, error in zip(snap.worker_urls, snap.worker_errors, strict=True):
        if error is not None:
            lines.append(f"  worker {url}: {error}")
    lines += ["", f"{'INTAKE (API, all events)':<36}{'per second':>12}{'total':>12}"]
    lines.append(_row("booking requests", summary.requests))
    for outcome, count in summary.outcomes.items():
        lines.append(_row("  " + OUTCOME_LABELS.get(outcome, outcome), count))
    lines.append("DECISIONS (workers, all events)")
    lines.append(_row("decided", summary.decided))
    for (status, reason), count in summary.decisions.items():
        label = status.lower() if reason in ("", "none") else f"{status.lower()} {reason}"
        lines.append(_row("  " + label, count))
    lines.append(_row("dead letters", summary.dead_letters))
    percentiles = "  ".join(f"p{q * 100:g} {_duration(summary.latency.get(q))}" for q in QUANTILES)
    window = f"  ({summary.latency_window})" if summary.latency_window else ""
    lines.append(f"  decision latency  {percentiles}{window}")
    lines.append("BACKLOG")
    lag = "unknown (no answer from a worker)" if summary.lag is None else f"{summary.lag} messages"
    lines.append(f"  consumer lag  {lag}")
    lines.append(f"EVENT {snap.event_id} (audit)")
    if audit is not None:
        lines.append(
            f"  capacity {audit['capacity']}  sold {audit['sold']}  "
            f"available {audit['redis_available']}  in flight {audit['in_flight']}  "
            f"drift {audit['drift']}"
        )
        lines.append(
            f"  bookings confirmed {audit['confirmed_bookings']}  "
            f"rejected {audit['rejected_bookings']}"
        )
    elif event is not None:
        lines.append(
            f"  capacity {event['capacity']}  sold {event['sold']}  available {event['available']}"
        )
    verdict = summary.verdict
    if verdict is None:
        lines.append(f"  verdict  ? ({snap.audit_error})")
    else:
        shown = f"{VERDICT_COLOURS.get(verdict, '')}{BOLD}{verdict}{RESET}" if colour else verdict
        lines.append(f"  verdict  {shown}{_busy_note(summary)}")
    return lines


def _busy_note(summary: Summary) -> str:
    """The audit reads the ledger and the gate one after the other, so while the worker is
    deciding it can catch them a batch apart: DRIFT is only conclusive once the sale is idle."""
    if summary.verdict != "DRIFT":
        return ""
    busy = (summary.lag or 0) > 0 or bool(summary.decided and summary.decided.rate)
    return "  (worker busy: conclusive only if it stays once idle)" if busy else ""


def render_line(summary: Summary) -> str:
    """One line per refresh, for logs and pipes."""
    snap = summary.snapshot
    confirmed = sum(c.total for (s, _), c in summary.decisions.items() if s == "CONFIRMED")
    rejected = sum(c.total for (s, _), c in summary.decisions.items() if s == "REJECTED")
    p95 = _duration(summary.latency.get(0.95))
    parts = [
        f"{snap.wall:%Y-%m-%dT%H:%M:%S}Z",
        f"event={snap.event_id}",
        f"requests/s={_rate(summary.requests)}",
        f"accepted/s={_rate(summary.outcomes.get('accepted'))}",
        f"decided/s={_rate(summary.decided)}",
        f"accepted={_total(summary.outcomes.get('accepted'))}",
        f"sold_out={_total(summary.outcomes.get('sold_out'))}",
        f"confirmed={confirmed:.0f}" if summary.decided else "confirmed=-",
        f"rejected={rejected:.0f}" if summary.decided else "rejected=-",
        f"lag={'-' if summary.lag is None else summary.lag}",
        f"p95={p95}",
    ]
    audit = snap.audit
    if audit is not None:
        parts.append(f"sold={audit['sold']}/{audit['capacity']}")
    parts.append(f"verdict={summary.verdict or '?'}")
    if _busy_note(summary):
        parts.append("(worker busy)")
    if snap.api_error:
        parts.append(f"api={snap.api_error!r}")
    return " ".join(parts)


class Screen:
    """Redraws the view in place with ANSI escapes: home, overwrite, clear the rest."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        # Hide the cursor and stop wrapping (long lines are clipped, not folded), clear once.
        out.write("\x1b[?25l\x1b[?7l\x1b[2J")

    def draw(self, lines: Sequence[str]) -> None:
        body = "".join(f"{line}\x1b[K\n" for line in lines)
        self._out.write(f"\x1b[H{body}\x1b[J")
        self._out.flush()

    def close(self) -> None:
        self._out.write("\x1b[?7h\x1b[?25h")
        self._out.flush()


# ------------------------------------------------------------------------------------ CLI


def _frames(sources: Sources, interval: float, duration: float | None) -> Iterator[Summary]:
    """A summary every `interval` seconds, for `duration` seconds (forever when None)."""
    started = time.monotonic()
    previous: Snapshot | None = None
    ticks = 0
    while True:
        current = sources.snapshot()
        yield summarize(previous, current)
        previous = current
        ticks += 1
        next_at = started + ticks * interval
        if duration is not None and next_at > started + duration:
            return
        time.sleep(max(0.0, next_at - time.monotonic()))


def watch(
    sources: Sources, out: TextIO, interval: float, duration: float | None, tty: bool
) -> None:
    """Refresh until Ctrl-C (or `duration`): in place on a terminal, else a line each time."""
    colour = tty and not os.environ.get("NO_COLOR")
    screen = Screen(out) if tty else None
    try:
        for summary in _frames(sources, interval, duration):
            if screen is not None:
                screen.draw(render_panel(summary, interval, colour))
            else:
                out.write(render_line(summary) + "\n")
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        if screen is not None:
            screen.close()


def _token(configured: str) -> str:
    if configured:
        return configured
    try:
        return TOKEN_FILE.read_text().strip()
    except OSError:
        return ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.live",
        description="Live terminal view of a flash sale: intake, outcomes, lag, audit verdict.",
    )
    parser.add_argument("--event", type=int, required=True, help="event id to audit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    parser.add_argument(
        "--api",
        default=os.environ.get("TICKETS_API_URL", DEFAULT_API),
        help=f"API base URL (default TICKETS_API_URL or {DEFAULT_API})",
    )
    parser.add_argument(
        "--worker-metrics",
        action="append",
        metavar="URL",
        help="a worker's /metrics URL; repeat for several workers "
        "(default http://127.0.0.1:$TICKETS_WORKER_METRICS_PORT/metrics)",
    )
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--once", action="store_true", help="print one snapshot and exit")
    stop.add_argument("--duration", type=float, help="stop after this many seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.interval <= 0 or (args.duration is not None and args.duration <= 0):
        parser.error("--interval and --duration must be positive")
    for url in [args.api, *(args.worker_metrics or ())]:
        if not url.startswith(("http://", "https://")):
            parser.error(f"not an http(s) URL: {url}")
    settings = load_or_exit()
    workers = args.worker_metrics
    if workers is None:
        port = settings.worker_metrics_port
        workers = [f"http://127.0.0.1:{port}/metrics"] if port else []
    sources = Sources(args.api.rstrip("/"), workers, args.event, _token(settings.admin_token))
    if args.once:
        snapshot = sources.snapshot()
        print("\n".join(render_panel(summarize(None, snapshot))))
        return EXIT_UNREACHABLE if snapshot.api is None else EXIT_OK
    watch(sources, sys.stdout, args.interval, args.duration, sys.stdout.isatty())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
