"""`python -m consumer --stop-when-idle`, the burst mode that drains and the benchmark use:
it decides the whole backlog, then exits by itself."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from scripts.pipeline import Pipeline
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


async def test_burst_worker_decides_the_whole_backlog_then_exits(
    sale: SaleClient, pipeline: Pipeline
) -> None:
    for worker in pipeline.workers:
        pipeline.terminate(worker)  # the backlog waits for the burst worker alone
    event_id = await sale.create_event(capacity=150, per_user_limit=1)
    accepted = await asyncio.gather(*(sale.book(event_id, f"user-{i}") for i in range(200)))
    assert Counter(r.status_code for r in accepted) == {202: 200}

    burst = pipeline.start_worker("--stop-when-idle")
    assert await asyncio.to_thread(burst.wait, 30) == 0

    # Exited only once everything was decided: one look, no waiting.
    views = await asyncio.gather(
        *(sale.http.get(f"/api/bookings/{r.json()['booking_id']}") for r in accepted)
    )
    assert Counter(v.json()["status"] for v in views) == {"CONFIRMED": 150, "REJECTED": 50}
    assert (await sale.audit(event_id))["verdict"] == "CLEAN"
