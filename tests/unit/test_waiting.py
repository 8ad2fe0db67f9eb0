"""scripts/waiting.py: how tests, the chaos runner and the benchmark wait for a condition."""

from __future__ import annotations

import time

import pytest

from scripts.waiting import eventually, poll_until

pytestmark = pytest.mark.unit


class Probe:
    """Answers from a script, then None for ever; remembers how often it was asked."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def __call__(self) -> object:
        self.asked += 1
        return self.answers.pop(0) if self.answers else None


async def test_poll_until_returns_the_first_answer() -> None:
    probe = Probe(None, False, "ready", "later")
    assert await poll_until(probe, timeout_s=10, interval_s=0.001) == "ready"
    assert probe.asked == 3


async def test_only_none_and_false_mean_not_yet() -> None:
    """A lag of 0 or an empty result is an answer, not "keep waiting"."""
    assert await poll_until(Probe(None, 0), timeout_s=10, interval_s=0.001) == 0
    assert await poll_until(Probe(False, {}), timeout_s=10, interval_s=0.001) == {}


async def test_poll_until_gives_none_at_the_deadline_after_a_last_look() -> None:
    probe = Probe()
    started = time.monotonic()
    assert await poll_until(probe, timeout_s=0.2, interval_s=5) is None
    assert time.monotonic() - started >= 0.2  # waited the whole timeout, not an interval
    assert probe.asked == 2  # once at the start, once more at the deadline


async def test_poll_until_asks_once_even_with_no_time_left() -> None:
    probe = Probe("ready")
    assert await poll_until(probe, timeout_s=0) == "ready"


async def test_eventually_returns_the_answer() -> None:
    assert await eventually(Probe(None, 42), "the answer", timeout_s=10, interval_s=0.001) == 42


async def test_eventually_names_what_did_not_happen() -> None:
    with pytest.raises(AssertionError, match=r"not within 0\.05s: the lag reaches 0"):
        await eventually(Probe(), "the lag reaches 0", timeout_s=0.05, interval_s=0.01)
