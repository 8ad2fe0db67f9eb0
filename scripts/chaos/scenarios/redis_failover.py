"""redis_failover (HA stack): kill -9 the Redis primary mid-sale; Sentinel promotes the
replica, which may lack the primary's last writes (replication is asynchronous); the old
primary comes back as a replica. The worker must notice the new primary and rebuild the gate
from PostgreSQL: every invariant holds without the reconciler."""

from __future__ import annotations

import re

from scripts.chaos.cluster import redis_primary, wait_promoted
from scripts.chaos.scenario import Run, Spec
from shared.redis_clients import open_redis


async def inject(run: Run) -> None:
    s = run.settings
    await run.wait_sold(0.35, timeout_s=20)
    killed, old = await redis_primary(s)
    await run.stack("kill9", killed)
    run.fault(f"kill -9 the Redis primary ({killed}, :{old})")
    new = await wait_promoted(s, old, timeout_s=30)
    run.expect("Sentinel promoted the replica", new is not None, f"primary now :{new}")
    run.fault(f"Sentinel promoted :{new}")
    await run.stack("start", killed)
    async with open_redis(s) as client:
        primary = str((await client.info("replication"))["role"])
    run.fault(f"{killed} back")
    run.expect("the clients write to the promoted server", primary == "master", primary)
    await run.at(0.8)
    logs = "".join(run.pipeline.log_of(w) for w in run.pipeline.workers)
    rebuilt = re.findall(r"rebuilt inventory counter of event \d+: available=\d+ \(the Redis", logs)
    run.expect(
        "the worker rebuilt the gate on the new primary",
        bool(rebuilt),
        f"{len(rebuilt)} rebuilds logged after the failover",
    )


SPEC = Spec(
    "redis_failover",
    "kill -9 of the Redis primary mid-sale, Sentinel promotes the replica",
    inject,
    duration_s=25,
    ha=True,
)
