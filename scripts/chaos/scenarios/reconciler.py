"""reconciler: the one scenario whose verdict rests on `python -m consumer.reconcile`. Once
the sale is over and idle, it breaks the Redis gate the three ways only the reconciler mends
(consumer/reconcile.py): a counter that drifted, a hold whose settle was lost after its
booking was confirmed, and a hold of a booking that never reached PostgreSQL. The workers
keep running and must not hide it; the runner then finds the invariants broken, runs the
reconciler once, and every invariant must hold afterwards."""

from __future__ import annotations

import uuid
from typing import Any

from scripts.chaos.observe import query
from scripts.chaos.scenario import Run, Spec
from scripts.waiting import poll_until
from shared.keys import RedisKeys
from shared.redis_clients import open_redis

DRIFT = 5  # the counter reads this much more than the ledger allows
ORPHAN_QUANTITY = 2


async def inject(run: Run) -> None:
    """Wait until the sale is over and the audit CLEAN, then break the first event's gate."""
    await run.traffic.done.wait()
    event_id = next(iter(run.events))

    async def idle() -> dict[str, Any] | None:
        audit = await run.api.audit(event_id)
        return audit if audit and audit["verdict"] == "CLEAN" else None

    before = await poll_until(idle, 45.0, interval_s=0.25)
    run.expect("the sale went idle with the audit CLEAN", before is not None, f"audit {before}")
    rows = await query(
        run.settings,
        "SELECT booking_id::text AS id, user_id, quantity FROM bookings"
        " WHERE event_id = %(e)s AND status = 'CONFIRMED' LIMIT 1",
        {"e": event_id},
    )
    keys = RedisKeys(run.settings.redis_prefix).event(event_id)
    orphan = str(uuid.uuid4())
    async with open_redis(run.settings) as client, client.pipeline(transaction=True) as pipe:
        # As reserve.lua holds: stock and the user's total taken, the hold recorded.
        pipe.incrby(keys.avail, DRIFT - ORPHAN_QUANTITY)
        pipe.hset(keys.holds, orphan, f"{ORPHAN_QUANTITY}|reconciler-ghost")
        pipe.hincrby(keys.users, "reconciler-ghost", ORPHAN_QUANTITY)
        pipe.incrby(keys.held, ORPHAN_QUANTITY)
        for row in rows:  # its hold back, as if the settle after its commit never ran
            pipe.hset(keys.holds, row["id"], f"{row['quantity']}|{row['user_id']}")
            pipe.incrby(keys.held, row["quantity"])
        await pipe.execute()
    run.fault(
        f"event {event_id}'s gate broken: counter +{DRIFT}, an orphan hold of "
        f"{ORPHAN_QUANTITY}, the hold of confirmed booking {rows[0]['id'] if rows else '-'} back"
    )
    audit = await run.api.audit(event_id)
    run.expect(
        "the audit sees the broken gate",
        audit is not None and audit["verdict"] != "CLEAN" and bool(rows),
        f"audit {audit}",
    )


SPEC = Spec(
    "reconciler",
    "the gate broken after the sale; only the reconciler mends it",
    inject,
    duration_s=12,
    # The break is not the workers' to mend: a short wait shows they leave it as it is.
    converge_timeout_s=8.0,
)
