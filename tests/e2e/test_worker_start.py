"""A worker started while Kafka is down (a supervisor restarting it mid-outage) waits for
Kafka and then decides, instead of exiting at once; a SIGTERM still stops it while it waits.
The stack's own Kafka is stopped and started again, so this test restarts a real broker."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from scripts.chaos.faults import Stack
from scripts.pipeline import Pipeline
from scripts.waiting import eventually
from tests.sale import SaleClient

pytestmark = pytest.mark.e2e


async def test_a_worker_started_while_kafka_is_down_waits_then_decides(
    sale: SaleClient, pipeline: Pipeline, tmp_path: Path
) -> None:
    for worker in pipeline.workers:
        pipeline.terminate(worker)  # only the workers started below may decide
    event_id = await sale.create_event(capacity=5)
    stack = Stack(tmp_path / "stack.log")  # this stack's: its ports from the environment
    await stack("stop", "kafka")
    try:
        waiting = pipeline.start_worker()
        leaving = pipeline.start_worker()

        async def retried_twice() -> bool:
            return all(_log(pipeline, w).count("(Kafka) failed") >= 2 for w in (waiting, leaving))

        await eventually(retried_twice, "both workers retried connecting to Kafka", 30)
        assert waiting.poll() is None and leaving.poll() is None, "a worker exited"

        sigterm_at = time.monotonic()
        assert pipeline.terminate(leaving, timeout_s=10) == 0
        assert time.monotonic() - sigterm_at < 5, "SIGTERM not honoured while waiting"
        assert "worker stopped" in _log(pipeline, leaving)
    finally:
        await stack("start", "kafka")

    async def accepted() -> str | None:
        answer = await sale.book(event_id, "buyer-1")  # 503 until the API reconnects
        return answer.json()["booking_id"] if answer.status_code == 202 else None

    booking_id = await eventually(accepted, "a 202 once Kafka is back", 30, interval_s=0.5)

    async def confirmed() -> bool:
        view = (await sale.http.get(f"/api/bookings/{booking_id}")).json()
        return view["status"] == "CONFIRMED"

    await eventually(confirmed, "the waiting worker decided the booking", 60, interval_s=0.2)
    assert waiting.poll() is None
    assert "worker started" in _log(pipeline, waiting)
    assert (await sale.audit(event_id))["verdict"] == "CLEAN"


def _log(pipeline: Pipeline, proc: subprocess.Popen[bytes]) -> str:
    return pipeline.logs[proc.pid].read_text(errors="replace")


async def test_a_worker_stopped_while_kafka_is_down_stops_in_order(
    sale: SaleClient, pipeline: Pipeline, tmp_path: Path
) -> None:
    (worker,) = pipeline.workers

    async def assigned() -> bool:
        return "partitions assigned" in _log(pipeline, worker)

    await eventually(assigned, "the worker consumes its partitions", 30)
    stack = Stack(tmp_path / "stack.log")
    await stack("kill9", "kafka")
    try:

        async def fetch_failing() -> bool:
            return _log(pipeline, worker).count("Unable connect to node") >= 3

        await eventually(fetch_failing, "the worker's fetches fail", 30)
        assert pipeline.terminate(worker, timeout_s=15) == 0, _log(pipeline, worker)[-2000:]
        assert "worker stopped" in _log(pipeline, worker)
    finally:
        await stack("start", "kafka")
