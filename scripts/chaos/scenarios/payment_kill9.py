"""payment_kill9: the worker is killed while writing a batch of payments, then (its
successor) between the payments' PostgreSQL commit and the offset commit; every accepted
payment still confirms its hold exactly once, or is owed back."""

from __future__ import annotations

import signal

from scripts.chaos.scenario import Run, Spec


async def inject(run: Run) -> None:
    """A worker per fault point, each deciding until its first batch with payments kills
    it; then one without."""
    for point in ("after_payment_write", "after_payment_commit"):
        worker = run.start_worker(fault_point=point)
        rc = await run.pipeline.wait_exit(worker, timeout_s=run.spec.duration_s + 15)
        hit = f"fault injection: SIGKILL at {point}" in run.pipeline.log_of(worker)
        run.fault(f"worker {worker.pid} killed itself at {point} (exit {rc})")
        run.expect(
            f"worker died by SIGKILL at {point}",
            rc == -signal.SIGKILL and hit,
            f"exit {rc}, log says so: {hit}",
        )
        await run.check_offsets(f"after the kill at {point}")
    run.start_worker()


SPEC = Spec(
    "payment_kill9",
    "worker kill -9 writing payments, and between their commit and the offset commit",
    inject,
    start_workers=False,
    duration_s=16,
    hold_seconds=8,
    pay_share=0.7,
)
