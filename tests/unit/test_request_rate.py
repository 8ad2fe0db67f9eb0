"""The console's requests/s: a rate between readings of the API's own counter, and no rate
at all once the readings stop (a sampler that died must not leave its last rate shown)."""

from __future__ import annotations

import pytest

from api.request_rate import STALE_S, RequestRate, booking_requests_total
from shared.metrics import BOOKING_OUTCOME


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_is_between_readings_and_none_once_they_stop() -> None:
    clock = Clock()
    rate = RequestRate(clock)
    assert rate.per_s(10) is None
    total = 1_000
    rate.record(total)
    assert rate.per_s(10) is None  # one reading gives no rate
    for _ in range(4):
        clock.now += 1
        total += 50
        rate.record(total)
    assert rate.per_s(10) == pytest.approx(50)
    assert rate.per_s(2) == pytest.approx(50)
    clock.now += STALE_S + 0.1  # the sampler stopped
    assert rate.per_s(10) is None


def test_the_total_is_the_booking_counter_over_every_outcome() -> None:
    before = booking_requests_total()
    BOOKING_OUTCOME["accepted"].inc()
    BOOKING_OUTCOME["sold_out"].inc(2)
    assert booking_requests_total() == before + 3
