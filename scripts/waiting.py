"""Waiting for a condition from outside the system (tests, the chaos runner, the benchmark,
the attack): ask again every `interval_s` until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll_until(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float, interval_s: float = 0.1
) -> T | None:
    """The first answer of `probe` that is not None or False, or None once `timeout_s` has
    passed (the probe runs at least once, and once more at the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await probe()
        if answer is not None and answer is not False:
            return answer
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(interval_s, left))


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
) -> T:
    """`poll_until`, raising AssertionError that names `what` on timeout."""
    answer = await poll_until(probe, timeout_s, interval_s)
    if answer is None:
        raise AssertionError(f"not within {timeout_s:g}s: {what}")
    return answer
