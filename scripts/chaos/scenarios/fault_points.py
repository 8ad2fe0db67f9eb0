"""fault_points: the worker SIGKILLs itself between the Redis reservation and the PostgreSQL
commit, then (its successor) between the PostgreSQL commit and the offset commit."""

from __future__ import annotations

import signal

from scripts.chaos.observe import decided_ids
from scripts.chaos.scenario import Run, Spec


async def inject(run: Run) -> None:
    """Start a worker with each fault point in turn, then one without."""
    pipeline = run.pipeline
    await run.wait_accepted(20, timeout_s=10)
    for point in ("after_reserve", "after_db_commit"):
        decided_before = await run.decided()
        worker = run.start_worker(fault_point=point)
        rc = await pipeline.wait_exit(worker, timeout_s=30)
        hit = f"fault injection: SIGKILL at {point}" in pipeline.log_of(worker)
        run.fault(f"worker {worker.pid} killed itself at {point} (exit {rc})")
        run.expect(
            f"worker died by SIGKILL at {point}",
            rc == -signal.SIGKILL and hit,
            f"exit {rc}, log says so: {hit}",
        )
        offsets = await run.check_offsets(f"after the kill at {point}")
        decided_after = await run.decided()
        if point == "after_reserve":
            audits = [await run.api.audit(e) for e in run.events]
            held = sum(a["in_flight"] for a in audits if a)
            run.expect(
                "killed after the reservation: stock held in Redis, nothing new in PostgreSQL",
                held > 0 and decided_after == decided_before,
                f"held {held}, decided before {decided_before} after {decided_after}",
            )
        elif offsets is not None:
            ahead = {b for b in offsets.above_committed() if b is not None}
            decided_ahead = len(await decided_ids(run.settings, ahead))
            run.expect(
                "killed after the PostgreSQL commit: decided bookings above the committed offset",
                decided_ahead > 0,
                f"{decided_ahead} decided bookings not yet committed in Kafka",
            )
    run.start_worker()  # without the fault point


SPEC = Spec(
    "fault_points",
    "worker dies after the reservation, then after the DB commit",
    inject,
    start_workers=False,
    duration_s=28,
)
