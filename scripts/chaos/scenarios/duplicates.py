"""duplicates: raw copies of published booking messages go to the topic again (in the same
batch, while a worker is dead, and after they were decided); buyers lose answers and retry
with the same Idempotency-Key, and replay accepted requests."""

from __future__ import annotations

import signal

from aiokafka import AIOKafkaProducer

from scripts.chaos.observe import read_records
from scripts.chaos.scenario import Run, Spec
from shared.contracts import decode_command


async def inject(run: Run) -> None:
    """Copies four times over the sale; the lost answers and replays come from the traffic."""
    s = run.settings
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    await producer.start()
    copies = 0
    try:

        async def duplicate(share: float, label: str) -> None:
            nonlocal copies
            records = await read_records(s, s.topic)
            chosen = [r for r in records if run.rng.random() < share]
            for r in chosen:
                await producer.send(s.topic, value=r.value, key=r.key, partition=r.partition)
            await producer.flush()
            copies += len(chosen)
            run.fault(f"{len(chosen)} raw duplicate messages produced ({label})")

        await run.at(0.2)
        await duplicate(1.0, "every message so far, while the worker runs")
        victim = run.pipeline.live_workers()[0]
        await run.stop_worker(victim, signal.SIGKILL)
        run.fault(f"kill -9 worker {victim.pid}")
        await duplicate(0.5, "while no worker runs")
        run.start_worker()
        await run.at(0.85)
        await duplicate(0.3, "during the rush")
        await run.traffic.done.wait()
        await duplicate(1.0, "after the sale: every message again")
    finally:
        await producer.stop()
    # Raw ids: a copy appended after its request's deadline is still a copy on the topic
    # (the worker drops it as expired; read_topic would hide it).
    records = [str(decode_command(r.value).booking_id) for r in await read_records(s, s.topic)]
    unique = set(records)
    run.expect(
        "duplicates reached the topic",
        len(records) - len(unique) >= copies > 0,
        f"{len(records)} messages for {len(unique)} bookings ({copies} copies produced)",
    )
    lost = sum(1 for o in run.traffic.outcomes for a in o.attempts[:1] if a.status == "transport")
    run.note(f"{lost} first answers lost on purpose, then retried with the same key")


SPEC = Spec(
    "duplicates",
    "duplicate deliveries, lost answers and replayed keys",
    inject,
    duration_s=25,
    flaky_share=0.25,
    replay_share=0.3,
)
