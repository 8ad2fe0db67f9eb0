"""redis_wipe: restart Redis with its data gone mid-sale (the stack's Redis keeps nothing on
disk); the worker must rebuild the counter from PostgreSQL before the gate admits anyone."""

from __future__ import annotations

import re

from scripts.chaos.nemesis import service_outage
from scripts.chaos.scenario import Run, Spec
from shared.keys import RedisKeys
from shared.redis_clients import open_redis


async def inject(run: Run) -> None:
    """Kill -9 Redis once about a third is sold, start it empty a second later."""
    await run.wait_sold(0.35, timeout_s=20)
    keys = RedisKeys(run.settings.redis_prefix)
    counter = keys.event(next(iter(run.events))).avail
    async with open_redis(run.settings) as client:
        before = await client.get(counter)
        # Keys that nothing writes again once gone: cached decisions, idempotency keys.
        # (The event's gate keys are rebuilt at once, and the admission loop takes its
        # lease again within a tick; they are not evidence.)
        probes = [
            k
            async for k in client.scan_iter(match=keys.everything, count=1000)
            if not RedisKeys.is_gate_key(k) and k != keys.queue_admitter
        ][:50]
        sold_before = await run.sold()
        await service_outage(
            run,
            "redis",
            "kill9",
            1.0,
            f"kill -9 redis (counter was {before!r}, sold {sold_before})",
            "redis restarted empty",
        )
    async with open_redis(run.settings) as client:
        kept = await client.exists(*probes) if probes else 0
    run.expect(
        "Redis came back without its data",
        before is not None and len(probes) > 0 and kept == 0,
        f"counter before {before!r}; of {len(probes)} cached decisions and keys, {kept} "
        "survived the restart",
    )
    await run.at(0.8)
    logs = "".join(run.pipeline.log_of(w) for w in run.pipeline.workers)
    rebuilt = re.findall(r"rebuilt inventory counter of event \d+: available=(-?\d+)", logs)
    run.expect(
        "the worker rebuilt the counter from PostgreSQL",
        bool(rebuilt)
        and all(0 <= int(a) <= sum(run.events.values()) - (sold_before or 0) for a in rebuilt),
        f"rebuilt with available={rebuilt} (sold before the wipe {sold_before})",
    )


SPEC = Spec(
    "redis_wipe",
    "Redis restarted with its data gone mid-sale",
    inject,
    duration_s=18,
)
