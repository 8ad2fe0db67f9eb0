"""broker_leader_kill9 (HA stack): kill -9 the Kafka node leading the hot partition (the
event's) mid-sale, restart it later. With three replicas and min.insync.replicas=2, another
node takes the lead: no acknowledged booking is lost and the sale keeps deciding."""

from __future__ import annotations

import asyncio

from scripts.chaos.cluster import leader_of, wait_leader_other_than
from scripts.chaos.sandbox import partition_of
from scripts.chaos.scenario import Run, Spec

# How long the killed node stays down once another one leads: the cluster runs on two.
DOWN_S = 6.0


async def inject(run: Run) -> None:
    await run.wait_sold(0.25, timeout_s=20)
    s = run.settings
    hot = partition_of(next(iter(run.events)), run.spec.partitions)
    leader = await leader_of(s, s.topic, hot)
    kill = f"kill -9 kafka-{leader}, leader of the hot partition {hot}"
    async with run.outage(kill, f"kafka-{leader} back") as outage:
        await run.stack("kill9", f"kafka-{leader}")
        new = await wait_leader_other_than(s, s.topic, hot, leader, timeout_s=30)
        run.expect("another node took the hot partition's lead", new is not None, f"leader {new}")
        run.note(f"kafka-{new} leads partition {hot}")
        await asyncio.sleep(DOWN_S)
        await run.stack("start", f"kafka-{leader}")
    assert outage.window is not None
    await run.expect_available(outage.window, share=0.9, silence_s=10.0)


SPEC = Spec(
    "broker_leader_kill9",
    "kill -9 of the hot partition's leader in a three-node Kafka cluster",
    inject,
    duration_s=30,
    ha=True,
    # The service's default: a request that meets the seconds without a leader (until the
    # dead node's session runs out) waits for the new one instead of hearing 503.
    settings={"produce_timeout_s": 5.0},
)
