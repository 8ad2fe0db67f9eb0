"""worker_kill9: kill -9 workers at random moments, 12 times in one sale, restarting each at
once. Every fourth kill waits until the group consumes again and strikes the worker that is
mid-batch (its event's held stock just grew in Redis: reserved, not yet settled); the others
strike the replacement at a random moment of its start (imports, the reconciler run at start,
joining the group). A member killed while in the group stalls the whole group until its
session expires (aiokafka's default 10 s), which paces the mid-batch kills."""

from __future__ import annotations

import asyncio
import signal

from scripts.chaos.scenario import Run, Spec


async def inject(run: Run, kills: int = 12, every: int = 4) -> None:
    """`kills` kill -9 in one sale, every `every`-th of them mid-batch."""
    pipeline = run.pipeline
    mid_batch = 0
    newest = None
    await asyncio.sleep(run.rng.uniform(0.5, 1.5))
    for n in range(kills):
        live = pipeline.live_workers() or [run.start_worker()]
        victim = newest if newest is not None and newest.poll() is None else run.rng.choice(live)
        state = ""
        if n % every == 0:
            caught = await run.wait_mid_batch(timeout_s=20)
            if caught is not None:
                victim = run.owner_of(caught[0]) or victim
                state = f"mid-batch, {caught[1]} tickets held in Redis"
                mid_batch += 1
        else:
            await asyncio.sleep(run.rng.uniform(0.1, 1.5))
        parts = pipeline.assignment(victim)
        if not state:
            started = "worker started:" in pipeline.log_of(victim)
            state = (
                f"consuming partitions {parts}"
                if parts
                else ("joining the group" if started else "starting")
            )
        await run.stop_worker(victim, signal.SIGKILL, timeout_s=10)
        run.fault(f"kill -9 worker {victim.pid} ({state})")
        newest = run.start_worker()
    run.expect(
        "at least 10 kill -9 in one sale, some mid-batch",
        len(run.result.faults) >= 10 and mid_batch >= 1,
        f"{len(run.result.faults)} kills, {mid_batch} of them mid-batch",
    )
    await run.check_offsets("after the last kill")


SPEC = Spec(
    "worker_kill9",
    "worker kill -9 at random moments, 12 times",
    inject,
    events=2,
    workers=2,
    partitions=2,
    duration_s=40,
)
