"""The soak's registry of fault kinds: each a small async function that breaks one thing
once, with its weight in the random mix, the lane it runs in, and what it needs (a kind
whose needs are not met is skipped, and the soak's report says why).

Two lanes run side by side, so faults overlap as they would in production: "process"
(the workers: kill -9, SIGTERM, joining and leaving, dying at a fault point) and "service"
(the stack's services and the topic: Kafka, PostgreSQL, Redis, duplicate deliveries). The
HA stack's kinds (a Kafka node killed or restarted while the others carry on, the Redis
primary killed and Sentinel failing over) need a soak on that stack (`Spec.ha`); there,
`kafka_kill9` kills every node at once and `redis_wipe` flushes the primary.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from scripts.chaos.cluster import leader_of, redis_primary, wait_leader_other_than, wait_promoted
from scripts.chaos.nemesis import kill9, process_state, produce_copies, service_outage
from scripts.chaos.observe import read_records
from scripts.chaos.sandbox import partition_of
from scripts.chaos.scenario import Run
from shared.redis_clients import open_redis

MIN_WORKERS, MAX_WORKERS = 1, 4
KAFKA_NODES = 3  # of the HA stack
POINTS = ("after_reserve", "after_db_commit")

Needs = Callable[[Run], Awaitable[str | None]]  # None: it can run; else why not


@dataclass(frozen=True)
class FaultKind:
    name: str
    weight: float
    inject: Callable[[Run], Awaitable[None]]
    lane: Literal["process", "service"]
    needs: Needs | None = None


async def _stock_left(run: Run) -> str | None:
    """A worker only consumes while requests still reach Kafka, i.e. before the sell-out."""
    sold = await run.sold()
    return None if sold is not None and sold < sum(run.events.values()) else "sold out"


async def _a_notifier(run: Run) -> str | None:
    return None if run.pipeline.live_notifiers() else "no notifier runs"


async def _room_to_join(run: Run) -> str | None:
    return None if len(run.pipeline.live_workers()) < MAX_WORKERS else "workers at the maximum"


async def _room_to_leave(run: Run) -> str | None:
    return None if len(run.pipeline.live_workers()) > MIN_WORKERS else "workers at the minimum"


async def _ha(run: Run) -> str | None:
    return None if run.spec.ha else "needs the HA stack (three Kafka nodes, Redis Sentinel)"


async def worker_kill9(run: Run) -> None:
    """kill -9 a worker at a random moment, or (a third of the time) the one mid-batch."""
    live = run.pipeline.live_workers() or [run.start_worker()]
    victim, state = run.rng.choice(live), ""
    if run.rng.random() < 1 / 3:
        caught = await run.wait_mid_batch(timeout_s=3)
        if caught is not None and (owner := run.owner_of(caught[0])) is not None:
            victim, state = owner, f"mid-batch, {caught[1]} tickets held in Redis"
    await kill9(run, victim, "worker", state or process_state(run, victim))


async def worker_sigterm(run: Run) -> None:
    """SIGTERM a worker (it finishes its batch and leaves), a successor started at once."""
    live = run.pipeline.live_workers() or [run.start_worker()]
    victim = run.rng.choice(live)
    rc = await run.stop_worker(victim, signal.SIGTERM)
    run.fault(f"SIGTERM worker {victim.pid} (exit {rc})")
    run.start_worker()


async def worker_joins(run: Run) -> None:
    worker = run.start_worker()
    run.fault(f"worker {worker.pid} joins the group")


async def worker_leaves(run: Run) -> None:
    victim = run.rng.choice(run.pipeline.live_workers())
    rc = await run.stop_worker(victim, signal.SIGTERM)
    run.fault(f"worker {victim.pid} left the group by SIGTERM (exit {rc})")


async def fault_point(run: Run) -> None:
    """Every worker leaves; one with a fault point takes the partitions and SIGKILLs itself
    there (after the Redis reservation, or after the PostgreSQL commit); then two without."""
    point = run.rng.choice(POINTS)
    await asyncio.gather(*(run.stop_worker(w, signal.SIGTERM) for w in run.pipeline.live_workers()))
    worker = run.start_worker(fault_point=point)
    rc = await run.pipeline.wait_exit(worker, timeout_s=20)
    hit = f"fault injection: SIGKILL at {point}" in run.pipeline.log_of(worker)
    if rc is None:
        await run.stop_worker(worker, signal.SIGKILL)
    run.fault(f"worker {worker.pid} at fault point {point}: {'killed there' if hit else 'missed'}")
    for _ in range(2):
        run.start_worker()


async def duplicates(run: Run) -> None:
    """Raw copies of up to 100 messages from anywhere in the booking topic."""
    records = await read_records(run.settings, run.settings.topic)
    chosen = run.rng.sample(records, min(100, len(records)))
    await produce_copies(run, chosen, "random messages of the sale so far")


async def kafka_kill9(run: Run) -> None:
    await service_outage(run, "kafka", "kill9", 2.0, "kill -9 kafka", "kafka started")


async def postgres_restart(run: Run) -> None:
    how: Literal["stop", "kill9"] = "stop" if run.rng.random() < 0.5 else "kill9"
    await service_outage(run, "postgres", how, 1.5, f"postgres {how}", "postgres started")


async def redis_wipe(run: Run) -> None:
    if not run.spec.ha:
        await service_outage(run, "redis", "kill9", 0.5, "kill -9 redis", "redis restarted empty")
        return
    # Under Sentinel a killed primary fails over (redis_failover); a wipe is the primary
    # losing its data, which its replica then copies.
    async with open_redis(run.settings) as client:
        await client.flushall()
    run.fault("the Redis primary flushed (FLUSHALL)")


async def broker_leader_kill9(run: Run) -> None:
    """kill -9 the Kafka node leading the hot partition; restart it once another leads."""
    s = run.settings
    hot = partition_of(next(iter(run.events)), run.spec.partitions)
    leader = await leader_of(s, s.topic, hot)
    if leader < 0:
        raise RuntimeError(f"partition {hot} has no leader")
    kill = f"kill -9 kafka-{leader}, leader of the hot partition {hot}"
    async with run.outage(kill, f"kafka-{leader} back"):
        await run.stack("kill9", f"kafka-{leader}")
        await wait_leader_other_than(s, s.topic, hot, leader, timeout_s=30)
        await asyncio.sleep(run.rng.uniform(1.0, 4.0))
        await run.stack("start", f"kafka-{leader}")


async def broker_restart(run: Run) -> None:
    """One Kafka node stopped cleanly and started again (a rolling restart's step)."""
    node = f"kafka-{run.rng.randint(1, KAFKA_NODES)}"
    async with run.outage(f"{node} restarted", f"{node} back"):
        await run.stack("stop", node)
        await run.stack("start", node)


async def redis_failover(run: Run) -> None:
    """kill -9 the Redis primary; Sentinel promotes the replica; the old one comes back as
    a replica."""
    killed, old = await redis_primary(run.settings)
    async with run.outage(f"kill -9 the Redis primary ({killed})", f"{killed} back"):
        await run.stack("kill9", killed)
        if await wait_promoted(run.settings, old, timeout_s=30) is None:
            raise RuntimeError("Sentinel promoted no replica in 30 s")
        await run.stack("start", killed)


async def notifier_kill9(run: Run) -> None:
    victim = run.rng.choice(run.pipeline.live_notifiers())
    await kill9(run, victim, "notifier", process_state(run, victim))


KINDS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        FaultKind("worker_kill9", 4, worker_kill9, "process"),
        FaultKind("worker_sigterm", 2, worker_sigterm, "process"),
        FaultKind("worker_joins", 1, worker_joins, "process", _room_to_join),
        FaultKind("worker_leaves", 1, worker_leaves, "process", _room_to_leave),
        FaultKind("fault_point", 1, fault_point, "process", _stock_left),
        FaultKind("notifier_kill9", 1, notifier_kill9, "process", _a_notifier),
        FaultKind("duplicates", 2, duplicates, "service"),
        FaultKind("kafka_kill9", 1, kafka_kill9, "service"),
        FaultKind("postgres_restart", 1, postgres_restart, "service"),
        FaultKind("redis_wipe", 1, redis_wipe, "service"),
        FaultKind("broker_leader_kill9", 2, broker_leader_kill9, "service", _ha),
        FaultKind("broker_restart", 1, broker_restart, "service", _ha),
        FaultKind("redis_failover", 1, redis_failover, "service", _ha),
    )
}
