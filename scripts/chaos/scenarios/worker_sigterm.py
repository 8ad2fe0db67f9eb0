"""worker_sigterm: SIGTERM a worker mid-batch (while it holds stock in Redis it has not
settled), three times; then once while PostgreSQL is down under its batch. Each time it must
exit cleanly within the stack's grace period (20 s, after which `scripts/stack stop` and
Pipeline.terminate send SIGKILL), settle what it held, and have committed offsets only for
what PostgreSQL committed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

from scripts.chaos.observe import decided_ids, read_offsets
from scripts.chaos.scenario import Run, Spec


async def inject(run: Run, rounds: int = 3, grace_s: float = 20.0) -> None:
    """`rounds` SIGTERMs mid-batch, then one with the batch stuck on PostgreSQL."""
    pipeline = run.pipeline
    await run.wait_accepted(20, timeout_s=15)
    for n in range(rounds):
        worker = run.start_worker()
        await pipeline.wait_assigned(worker, timeout_s=20)
        caught = await run.wait_mid_batch(timeout_s=15)
        rc = await run.stop_worker(worker, signal.SIGTERM, timeout_s=grace_s)
        held = sum((await run.held()).values())
        where = f"mid-batch, {caught[1]} tickets held" if caught else "no batch in hand seen"
        run.fault(f"SIGTERM worker {worker.pid} ({where}; {await run.decided()} decided)")
        log = pipeline.log_of(worker)
        run.expect(
            f"SIGTERM #{n + 1} mid-batch: the batch is finished and settled, clean exit",
            caught is not None
            and rc == 0
            and held == 0
            and "finishing the batch in hand" in log
            and "worker stopped after" in log,
            f"{where}; exit {rc}; still held after the exit {held}",
        )
        await run.check_offsets(f"after SIGTERM #{n + 1}")
        await asyncio.sleep(run.rng.uniform(0.3, 1.0))

    worker = run.start_worker()
    await pipeline.wait_assigned(worker, timeout_s=20)
    async with run.outage("postgres stopped", "postgres started"):
        await run.stack("stop", "postgres")
        try:
            await _sigterm_stuck(run, worker, grace_s)
            offsets = await read_offsets(run.settings)
        finally:
            await run.stack("start", "postgres")
    below = {b for b in offsets.below_committed() if b is not None}
    decided_below = len(await decided_ids(run.settings, below))
    run.expect(
        "offsets committed only for decided bookings (abandoned batch)",
        decided_below == len(below),
        f"{len(below)} below the committed offsets, {decided_below} decided",
    )
    run.start_worker()


async def _sigterm_stuck(run: Run, worker: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the worker while PostgreSQL is down under its batch."""
    pipeline = run.pipeline
    # Requests keep being accepted (Kafka and Redis are up): the worker fetches them and
    # its batch cannot reach PostgreSQL.
    await run.wait_accepted(len(run.traffic.accepted) + 3, timeout_s=10)
    await asyncio.sleep(1.0)
    signalled = time.monotonic()
    rc = await run.stop_worker(worker, signal.SIGTERM, timeout_s=grace_s)
    took = time.monotonic() - signalled
    if rc is None:
        # Where is it stuck? The worker logs every task's stack on SIGUSR1.
        worker.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.5)
        worker.kill()
        await pipeline.wait_exit(worker, 10)
    run.fault(
        f"SIGTERM worker {worker.pid} with its batch stuck on PostgreSQL "
        f"(exit {rc} after {took:.1f}s)"
    )
    log = pipeline.log_of(worker)
    run.expect(
        "SIGTERM during a PostgreSQL outage: batch abandoned, clean exit within the grace",
        rc == 0 and "worker stopped after" in log,
        f"exit {rc} {took:.1f}s after SIGTERM (grace {grace_s:.0f}s); "
        f"log {pipeline.logs[worker.pid]}",
    )


SPEC = Spec(
    "worker_sigterm",
    "SIGTERM mid-batch, and during a PostgreSQL outage",
    inject,
    start_workers=False,
    duration_s=25,
)
