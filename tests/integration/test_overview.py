"""The console's overview in-process over the real services: the audits behind its verdicts
(whole-event queries on the API's own pool) run a couple at a time and are reused for a
while, however many events are shown and however often consoles poll."""

from __future__ import annotations

from typing import Any

import pytest

import api.overview
from shared.audit import AuditReport, audit_event
from tests.sale import SaleClient

pytestmark = pytest.mark.integration


async def test_overview_audits_run_two_at_a_time_and_are_reused(
    sale: SaleClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [await sale.create_event(capacity=5) for _ in range(8)]
    running = {"now": 0, "most": 0, "runs": 0}

    async def counted(*args: Any) -> AuditReport | None:
        running["now"] += 1
        running["runs"] += 1
        running["most"] = max(running["most"], running["now"])
        try:
            return await audit_event(*args)
        finally:
            running["now"] -= 1

    monkeypatch.setattr(api.overview, "audit_event", counted)
    for _ in range(3):  # three polls, as a console does every 1.5 s
        answer = await sale.http.get(
            "/api/console/overview", params={"limit": 8}, headers=sale.admin
        )
        assert answer.status_code == 200, answer.text
        rows = {e["id"]: e for e in answer.json()["events"]}
        assert all(rows[e]["verdict"] == "CLEAN" and rows[e]["free"] == 5 for e in events)
    assert running["most"] == api.overview.AUDITS_AT_ONCE
    assert running["runs"] == len(events)  # one audit per event for the three polls
