"""rebalance: three workers; a fourth joins mid-sale, later one of the first three leaves
(SIGTERM), and the others take over its partitions."""

from __future__ import annotations

import signal
import subprocess

from scripts.chaos.sandbox import partition_of
from scripts.chaos.scenario import Run, Spec
from scripts.waiting import poll_until


async def inject(run: Run) -> None:
    """A worker joins at a quarter of the sale; one that owns an event leaves past half."""
    pipeline = run.pipeline
    first = list(pipeline.live_workers())
    await run.at(0.25)
    added = run.start_worker()
    joined = await pipeline.wait_assigned(added, timeout_s=20)
    run.fault(f"worker {added.pid} joined the group (partitions {pipeline.assignment(added)})")
    run.expect("the added worker got partitions", joined, f"log {pipeline.logs[added.pid]}")
    await run.at(0.55)
    busy = {partition_of(e, run.spec.partitions) for e in run.events}
    owners = [w for w in first if set(pipeline.assignment(w) or ()) & busy and w.poll() is None]
    leaving = owners[0] if owners else first[0]
    parts = pipeline.assignment(leaving)
    rc = await run.stop_worker(leaving, signal.SIGTERM)
    run.fault(f"worker {leaving.pid} left the group by SIGTERM (had partitions {parts})")
    run.expect("the leaving worker stopped cleanly", rc == 0, f"exit {rc}")

    def owning() -> list[subprocess.Popen[bytes]]:
        return [w for w in pipeline.live_workers() if pipeline.assignment(w)]

    async def three_own() -> list[subprocess.Popen[bytes]] | None:
        now = owning()
        return now if len(now) == 3 else None

    owners = await poll_until(three_own, 15, interval_s=0.2) or owning()
    by_worker = {w.pid: pipeline.assignment(w) for w in owners}
    run.expect("the others took over", len(owners) == 3, f"partitions by worker {by_worker}")


SPEC = Spec(
    "rebalance",
    "3 workers, one joins and one leaves mid-sale",
    inject,
    events=3,
    workers=3,
    partitions=6,
    duration_s=20,
)
