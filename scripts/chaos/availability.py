"""How available the sale stayed while things broke: the fault windows a scenario declares,
the share of buyers' request attempts made inside them that were answered (202 or 409), and
the longest stretch without a decision in the ledger. Times are seconds on the sale's clock
(0 = the traffic started).

A fault is either an outage with a start and an end (`Run.outage`), or instantaneous
(`Run.fault`: a kill -9, a SIGTERM, a duplicate burst). An instantaneous fault's window is
the one rule below: it lasts INSTANT_WINDOW_S from the moment it is recorded."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from scripts.chaos.traffic import Attempt

# What an instantaneous fault disturbs lasts about this long: a killed worker's group waits
# out the dead member's session (6-10 s) before the sale decides again, but the API keeps
# answering; restarts and reconnects take a few seconds. One rule, so figures compare.
INSTANT_WINDOW_S = 5.0
# The answers that count as available: accepted, or sold out (a decision the buyer can act
# on). 503, 429 and transport errors make the buyer retry.
ANSWERED = (202, 409)


@dataclass(frozen=True, slots=True)
class FaultWindow:
    start: float  # sale clock, seconds
    end: float
    text: str


@dataclass(frozen=True)
class Availability:
    attempts: int  # attempts started inside a fault window
    answered: int  # of those, answered 202 or 409

    @property
    def share(self) -> float | None:
        return self.answered / self.attempts if self.attempts else None


def during_faults(
    attempts: Iterable[Attempt], windows: Iterable[FaultWindow], t0: float
) -> Availability:
    """The attempts started inside any window (`t0`: the sale clock's zero, monotonic), and
    how many of them were answered."""
    spans = _merged(windows)
    starts = [start for start, _ in spans]
    total = answered = 0
    for attempt in attempts:
        at = attempt.start - t0
        i = bisect.bisect_right(starts, at) - 1  # the last span starting before it
        if i >= 0 and at <= spans[i][1]:
            total += 1
            answered += attempt.status in ANSWERED
    return Availability(total, answered)


def longest_gap(decided_at: Iterable[float]) -> tuple[float, float] | None:
    """The longest stretch between two consecutive decisions (sale clock), from the first
    decision to the last; None with fewer than two."""
    times = sorted(decided_at)
    gaps = list(itertools.pairwise(times))
    return max(gaps, key=lambda g: g[1] - g[0]) if gaps else None


def longest_silence(window: FaultWindow, decided_at: Iterable[float]) -> float:
    """The longest stretch inside `window` without a decision (sale clock), from its start
    to the last decision in it (after that the sale may simply be sold out); the whole
    window when nothing was decided in it."""
    inside = [t for t in decided_at if window.start <= t <= window.end]
    gap = longest_gap([window.start, *inside])
    return window.end - window.start if gap is None else gap[1] - gap[0]


def _merged(windows: Iterable[FaultWindow]) -> list[tuple[float, float]]:
    """Overlapping windows as one, in order (so one bisection finds an attempt's)."""
    spans: list[tuple[float, float]] = []
    for w in sorted(windows, key=lambda w: w.start):
        if spans and w.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], w.end))
        else:
            spans.append((w.start, w.end))
    return spans
