"""The worker's audit side task against real PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from consumer.auditor import Auditor
from shared.audit import Verdict
from tests.integration.ledger import Ledger, request

pytestmark = pytest.mark.integration


def gauge(verdict: str) -> float | None:
    return REGISTRY.get_sample_value("tickets_audit_events", {"verdict": verdict})


async def test_counts_recent_events_by_verdict(ledger: Ledger) -> None:
    clean, drifted = await ledger.event(capacity=3), await ledger.event(capacity=3)
    await ledger.finalizer.finalize([request(clean, "a"), request(drifted, "b")])
    await ledger.inventory._redis.set(ledger.inventory.keys(drifted)[0], 7)
    auditor = Auditor(ledger.pool, ledger.inventory, interval_s=60)
    auditor.saw([clean, drifted])

    counts = await auditor.audit_recent()
    assert counts[Verdict.CLEAN] == 1
    assert counts[Verdict.DRIFT] == 1
    assert counts[Verdict.OVERSOLD] == 0
    assert gauge("DRIFT") == 1
    assert gauge("CLEAN") == 1
