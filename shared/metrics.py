"""Every Prometheus metric of the service, in one place. Labels are bounded (outcome, status,
reason, dependency, partition), never ids. The API exposes them on its /metrics (with
Litestar's own HTTP metrics); the worker on its own port (TICKETS_WORKER_METRICS_PORT), the
notifier on another (TICKETS_NOTIFY_METRICS_PORT)."""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry


class BatchHistogram(Collector):
    """A histogram fed a whole batch of values at once, exposed like prometheus_client's
    (`_bucket`, `_count`, `_sum`). Histogram.observe() takes two locks per value, thousands
    of times per batch in the worker's event loop; here a batch costs one pass and one lock."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = [float(b) for b in buckets] + [math.inf]
        self._counts = [0] * len(self._bounds)  # per bucket, not cumulative
        self._sum = 0.0
        self._lock = threading.Lock()  # the metrics server reads from its own thread
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        counts = [0] * len(self._bounds)
        total = 0.0
        for value in values:
            counts[bisect_left(self._bounds, value)] += 1  # first bound >= value, as `le`
            total += value
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip(self._bounds, counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# API
BOOKING_OUTCOMES = (
    "accepted", "replayed", "sold_out", "invalid", "not_found", "over_limit",
    "conflict", "unavailable", "too_large", "unauthenticated", "forbidden", "rate_limited",
    "not_admitted", "error",
)  # fmt: skip
BOOKING_REQUESTS = Counter(
    "tickets_booking_requests",
    "POST /api/bookings by outcome: accepted (202, published), replayed (202, same "
    "Idempotency-Key), sold_out (409 fast path), invalid (400), not_found (404), over_limit "
    "and conflict (422/409), unavailable (503), too_large (413), unauthenticated (401), "
    "forbidden (403), rate_limited (429), not_admitted (403: a queued event, no valid "
    "admission token), error (500)",
    ["outcome"],
)
PRODUCE_SECONDS = Histogram(
    "tickets_produce_seconds",
    "Time from publish to Kafka's acknowledgement (acks=all)",
    buckets=LATENCY_BUCKETS,
)

# Worker
DECISIONS = Counter(
    "tickets_decisions",
    "Bookings decided by the worker, by status and reason (reason 'none' when confirmed)",
    ["status", "reason"],
)
LIFECYCLE = Counter(
    "tickets_lifecycle_changes",
    "Bookings the worker moved after their first decision, by the status they moved to",
    ["status"],
)
DECISION_LATENCY = BatchHistogram(
    "tickets_decision_latency_seconds",
    "Time from the API accepting a booking to the worker committing its decision",
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "tickets_batch_size",
    "Messages per batch fetched by the worker",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
BATCH_SECONDS = Histogram(
    "tickets_batch_seconds",
    "Time to decide and commit one batch",
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "tickets_consumer_lag",
    "Messages not yet consumed, per assigned partition of the booking topic",
    ["partition"],
)
DEAD_LETTERS = Counter("tickets_dead_letters", "Messages parked on the dead-letter topic (poison)")
EXPIRED_REQUESTS = Counter(
    "tickets_expired_requests",
    "Requests the API answered 503 for that Kafka delivered anyway (appended after their "
    "deadline, or marked abandoned): dropped unseen",
)
DEPENDENCY_ERRORS = Counter(
    "tickets_dependency_errors",
    "Failures of a dependency that made the worker back off and retry a batch",
    ["dependency"],
)
RECONCILER_FIXES = Counter(
    "tickets_reconciler_fixes",
    "Fixes made by the reconciler, by kind",
    ["kind"],
)
AUDIT_EVENTS = Gauge(
    "tickets_audit_events",
    "Events this worker decided in the last hour, by audit verdict (the lie detector)",
    ["verdict"],
)
AUDIT_RUNS = Counter("tickets_audit_runs", "Audit rounds completed by the worker")
HELD_SEATS = Gauge(
    "tickets_held_seats",
    "Seats held (not yet paid) in the events this worker decided in the last hour, as its "
    "last audit round saw them",
)

# Notifier
NOTIFY_OUTCOMES = (
    "sent", "in_doubt", "duplicate", "not_mailed", "no_account", "refused", "undecodable",
)  # fmt: skip
NOTIFY_LAG = Gauge(
    "tickets_notify_lag",
    "Booking events not yet handled by the notifier, per assigned partition of the "
    "booking-events topic",
    ["partition"],
)
NOTIFICATIONS = Counter(
    "tickets_notifications",
    "Booking events handled by the notifier, by outcome: sent (the SMTP server accepted the "
    "mail), in_doubt (handed over, no reply: not sent again), duplicate (mailed before), "
    "not_mailed (a status buyers are not mailed about), no_account (the buyer has no "
    "address), refused (5xx: dead-lettered), undecodable (dead-lettered)",
    ["outcome"],
)


def _create_series() -> None:
    """Every bounded label value exists from the start at 0, so Prometheus's rate() sees the
    first increment and dashboards show 0 rather than "no data"."""
    for outcome in BOOKING_OUTCOMES:
        BOOKING_REQUESTS.labels(outcome)
    DECISIONS.labels("CONFIRMED", "none")
    for reason in ("SOLD_OUT", "LIMIT_EXCEEDED", "INVALID", "NOT_ADMITTED"):
        DECISIONS.labels("REJECTED", reason)
    for dependency in ("postgres", "redis", "kafka", "smtp", "other"):
        DEPENDENCY_ERRORS.labels(dependency)
    for kind in ("counters_rebuilt", "holds_settled", "holds_released", "counters_corrected"):
        RECONCILER_FIXES.labels(kind)
    for verdict in ("CLEAN", "IN_FLIGHT", "DRIFT", "OVERSOLD"):
        AUDIT_EVENTS.labels(verdict)
    for outcome in NOTIFY_OUTCOMES:
        NOTIFICATIONS.labels(outcome)


_create_series()

# Looked up once: labels() takes a lock and a dict lookup on every call.
BOOKING_OUTCOME = {outcome: BOOKING_REQUESTS.labels(outcome) for outcome in BOOKING_OUTCOMES}

# Live updates: the booking-events outbox and relay (worker), the streams (API).
OUTBOX_UNSENT = Gauge(
    "tickets_outbox_unsent",
    "Booking events committed to the outbox and not yet acknowledged by Kafka (as the relay "
    "last saw them; 0 on a worker that is not the relay)",
)
BOOKING_EVENTS_RELAYED = Counter(
    "tickets_booking_events_relayed",
    "Booking events the relay published to the booking-events topic (acknowledged)",
)
STREAM_CONNECTIONS = Gauge(
    "tickets_stream_connections",
    "Open Server-Sent Events connections of this API process, by stream",
    ["stream"],
)


# The on-sale queue: the admission loop (worker holding the lease), over every queued event.
QUEUE_WAITING = Gauge(
    "tickets_queue_waiting",
    "Queue entries still holding a place, over every queue (as the admission loop last saw "
    "them; 0 on a worker that does not hold the lease)",
)
QUEUE_ENDED = Counter(
    "tickets_queue_entries",
    "Queue entries whose wait ended, by outcome: admitted, expired (not polled), sold_out",
    ["outcome"],
)
QUEUE_ADMISSION_RATE = Gauge(
    "tickets_queue_admission_rate",
    "Admissions per second the admission loop measured, over every queue",
)
QUEUE_PAUSED = Gauge(
    "tickets_queue_paused",
    "Queues whose admission is paused, by why: admin, held (held stock), lag (the worker's)",
    ["why"],
)
for _outcome in ("admitted", "expired", "sold_out"):
    QUEUE_ENDED.labels(_outcome)
for _why in ("admin", "held", "lag"):
    QUEUE_PAUSED.labels(_why)


def serve(port: int, host: str) -> None:
    """A worker's or the notifier's own /metrics (port 0: none). A port in use is logged,
    not fatal: the process does its work without it."""
    if not port:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.error("metrics port %s unavailable: %s", port, exc)
