"""expiry_kill9: holds run out and the worker is killed mid-expiry, after the gate took
their stock back and before PostgreSQL committed; its successor finds the holds still due
and expires them, and the stock comes back once."""

from __future__ import annotations

import signal

from scripts.chaos.scenario import Run, Spec

POINT = "after_expiry_reserve"


async def inject(run: Run) -> None:
    """One worker with the fault point decides the sale until the first expiry kills it;
    then one without it."""
    worker = run.start_worker(fault_point=POINT)
    rc = await run.pipeline.wait_exit(worker, timeout_s=run.spec.duration_s + 15)
    hit = f"fault injection: SIGKILL at {POINT}" in run.pipeline.log_of(worker)
    run.fault(f"worker {worker.pid} killed itself mid-expiry (exit {rc})")
    run.expect(
        "worker died by SIGKILL mid-expiry", rc == -signal.SIGKILL and hit, f"exit {rc}: {hit}"
    )
    audits = [await run.api.audit(e) for e in run.events]
    run.expect(
        "killed mid-expiry: the gate gave stock back that the ledger still holds",
        any(a and a["verdict"] == "IN_FLIGHT" and a["held_quantity"] > 0 for a in audits),
        f"audits {[(a or {}).get('verdict') for a in audits]}, held "
        f"{[(a or {}).get('held_quantity') for a in audits]}",
    )
    run.start_worker()


SPEC = Spec(
    "expiry_kill9",
    "worker kill -9 between an expiry's gate release and its commit",
    inject,
    start_workers=False,
    duration_s=14,
    hold_seconds=2,
    pay_share=0.5,
)
