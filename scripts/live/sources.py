"""Where the live view's numbers come from: the API's and the workers' /metrics (parsed
with prometheus_client) and the event's audit, read in one snapshot."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import (
    BOOKING_EVENTS_RELAYED,
    BOOKING_REQUESTS,
    CONSUMER_LAG,
    DEAD_LETTERS,
    DECISION_LATENCY,
    DECISIONS,
    NOTIFY_LAG,
    OUTBOX_UNSENT,
    STREAM_CONNECTIONS,
    BatchHistogram,
)

HTTP_TIMEOUT_S = 2.0


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


RELAYED = _family(BOOKING_EVENTS_RELAYED) + "_total"


UNSENT = _family(OUTBOX_UNSENT)


STREAMS = _family(STREAM_CONNECTIONS)


NOTIFY_BEHIND = _family(NOTIFY_LAG)


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


def combine(scrapes: Sequence[Scrape]) -> Scrape:
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
    notifier: Scrape | None = None
    notifier_error: str | None = None  # None too when no notifier is watched


@dataclass(frozen=True)
class Sources:
    """Where the numbers come from."""

    api: str
    worker_metrics: list[str]
    event_id: int
    admin_token: str
    notifier_metrics: str | None = None

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
        notifier = notifier_error = None
        if self.notifier_metrics:
            try:
                notifier = self._metrics(self.notifier_metrics)
            except FETCH_ERRORS as exc:
                notifier_error = _problem(exc)
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
            notifier,
            notifier_error,
        )
