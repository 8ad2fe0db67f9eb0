"""redis_wipe_holds: Redis restarted empty while a thousand holds are live; the worker
rebuilds the counter from the ledger counting them (capacity - sold - held), so nothing is
sold twice, and the holds that run out give their stock back once."""

from __future__ import annotations

from typing import Any

from scripts.chaos.nemesis import service_outage
from scripts.chaos.scenario import Run, Spec
from scripts.waiting import poll_until

LIVE_HOLDS = 1000


async def inject(run: Run) -> None:
    """Kill -9 Redis once 1,000 seats are held, start it empty a second later; once the
    buyers are done, the idle audit must be CLEAN with holds still live: the rebuilt counter
    counted them."""
    event_id = next(iter(run.events))

    async def holding() -> dict[str, Any] | None:
        audit = await run.api.audit(event_id)
        return audit if audit and audit["held_quantity"] >= LIVE_HOLDS else None

    before = await poll_until(holding, run.spec.duration_s + 10, interval_s=0.1)
    run.expect(
        f"{LIVE_HOLDS} holds live before the wipe",
        before is not None,
        f"audit {await run.api.audit(event_id)}",
    )
    held = (before or {}).get("held_quantity")
    await service_outage(
        run, "redis", "kill9", 1.0, f"kill -9 redis with {held} seats held", "redis restarted empty"
    )

    await run.traffic.done.wait()

    async def idle_with_holds() -> dict[str, Any] | None:
        audit = await run.api.audit(event_id)
        if audit is None or audit["held_quantity"] == 0:
            return None
        return audit if audit["verdict"] == "CLEAN" else None

    agreed = await poll_until(idle_with_holds, 10.0, interval_s=0.05)
    run.expect(
        "the rebuilt counter counts the live holds (CLEAN with holds live)",
        agreed is not None and agreed["drift"] == 0,
        f"audit {agreed or await run.api.audit(event_id)}",
    )


SPEC = Spec(
    "redis_wipe_holds",
    "Redis restarted empty while 1,000 holds are live",
    inject,
    duration_s=16,
    capacity=1500,
    hold_seconds=20,
    pay_share=0.1,
)
