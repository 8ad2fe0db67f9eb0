"""From two snapshots to what the view shows: totals, rates over the interval, decision
latency quantiles from the histogram's buckets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from scripts.live.sources import (
    DEAD,
    DECIDED,
    LAG,
    LATENCY_BUCKETS,
    NOTIFY_BEHIND,
    RELAYED,
    REQUESTS,
    STREAMS,
    UNSENT,
    Scrape,
    Snapshot,
    combine,
)

QUANTILES = (0.5, 0.95, 0.99)


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
    relayed: Count | None = None  # booking events the relay published
    outbox_unsent: int | None = None
    streams: dict[str, int] = field(default_factory=dict)  # open SSE connections, by stream
    notify_lag: int | None = None

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
        before_workers = combine([s for s in previous.workers if s is not None])
    decided = dead = relayed = None
    unsent = None
    decisions: dict[tuple[str, str], Count] = {}
    lag = None
    latency: dict[float, float | None] = {}
    window = ""
    if up:
        workers = combine(up)
        counts = _counts(workers, before_workers, DECIDED, ("status", "reason"), seconds)
        decisions = {(status, reason): count for (status, reason), count in counts.items()}
        decided = _sum(workers, before_workers, DECIDED, seconds)
        dead = _sum(workers, before_workers, DEAD, seconds)
        if len(up) == len(current.workers) and workers.has(LAG):
            lag = int(workers.total(LAG))
        latency, window = _latency(workers, before_workers, seconds)
        relayed = _sum(workers, before_workers, RELAYED, seconds)
        if workers.has(UNSENT):
            unsent = int(workers.total(UNSENT))
    streams = {}
    if current.api is not None:
        streams = {key[0]: int(n) for key, n in current.api.by(STREAMS, "stream").items()}
    notify_lag = None
    if current.notifier is not None and current.notifier.has(NOTIFY_BEHIND):
        notify_lag = int(current.notifier.total(NOTIFY_BEHIND))
    return Summary(
        current,
        seconds,
        requests,
        outcomes,
        decided,
        decisions,
        dead,
        lag,
        latency,
        window,
        relayed,
        unsent,
        streams,
        notify_lag,
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
