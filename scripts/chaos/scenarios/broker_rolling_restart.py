"""broker_rolling_restart (HA stack): each Kafka node in turn stopped cleanly and started
again, the next one only once every replica is back in sync, as an upgrade would do."""

from __future__ import annotations

from scripts.chaos.cluster import wait_in_sync
from scripts.chaos.scenario import Run, Spec

NODES = 3


async def inject(run: Run) -> None:
    await run.wait_sold(0.1, timeout_s=20)
    synced = []
    async with run.outage("rolling restart of the Kafka nodes", "every node restarted") as outage:
        for node in range(1, NODES + 1):
            await run.stack("stop", f"kafka-{node}")
            run.note(f"kafka-{node} stopped")
            await run.stack("start", f"kafka-{node}")
            synced.append(await wait_in_sync(run.settings, NODES, timeout_s=60))
            run.note(f"kafka-{node} started{' and in sync' if synced[-1] else ''}")
    run.expect("every replica back in sync after each restart", all(synced), f"in sync: {synced}")
    assert outage.window is not None
    await run.expect_available(outage.window, share=0.9, silence_s=10.0)


SPEC = Spec(
    "broker_rolling_restart",
    "each node of a three-node Kafka cluster restarted in turn under traffic",
    inject,
    duration_s=45,
    ha=True,
)
